"""Where signed checkpoints go besides the database: append-only places outside it.

``AUDIT_CHECKPOINT_SINKS`` names them (comma-separated, each written in turn; the first
failure raises, and the checkpoint task retries):

- ``file``: ``AUDIT_CHECKPOINT_FILE`` (default ``$GOVSITE_VAR_DIR/audit-checkpoints.jsonl``),
  one JSON line per checkpoint, opened ``O_APPEND`` and fsynced. Make it append-only for
  the service's own user too (``chattr +a``), or keep it on another host's mount.
- ``syslog``: one message per checkpoint (facility ``auth``, tag ``govsite-audit``) to
  ``AUDIT_CHECKPOINT_SYSLOG``: a socket path (``/dev/log``), ``host:port`` (UDP) or
  ``tcp://host:port``, for a log collector on another host.
- ``http``: the line POSTed as JSON to ``AUDIT_CHECKPOINT_URL``, with
  ``AUDIT_CHECKPOINT_URL_TOKEN`` as a bearer token when set; any 2xx is success.

Reading back (``lines_read``, ``line_last``) accepts a syslog prefix before the JSON, so
a collector's log file can be handed to ``audit_verify --checkpoints`` as it is.
"""

import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

SINKS = ("file", "syslog", "http")
# Facility auth (4), severity notice (5).
SYSLOG_PRIORITY = 4 * 8 + 5
SYSLOG_TAG = "govsite-audit"


def file_append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        data = (line + "\n").encode()
        # One write of a whole line: with O_APPEND it lands after every earlier line.
        if os.write(fd, data) != len(data):
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


def syslog_send(address: str, line: str) -> None:
    message = f"<{SYSLOG_PRIORITY}>{SYSLOG_TAG}: {line}".encode()
    if address.startswith("/"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.send(message)
        return
    stream = address.startswith("tcp://")
    host, _, port = address.removeprefix("tcp://").removeprefix("udp://").rpartition(":")
    target = (host.strip("[]"), int(port))
    if stream:
        with socket.create_connection(target, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as sock:
            sock.sendall(message + b"\n")  # RFC 6587 newline framing
        return
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.sendto(message, target)


def http_post(url: str, token: str, line: str) -> None:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=line.encode(), headers=headers, method="POST")
    # A non-2xx answer raises HTTPError (an OSError), as does a refused connection.
    with urllib.request.urlopen(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS):
        pass


def sinks_write(line: str) -> list[str]:
    """Write ``line`` to every configured sink; returns their names."""
    for name in settings.AUDIT_CHECKPOINT_SINKS:
        if name == "file":
            file_append(Path(settings.AUDIT_CHECKPOINT_FILE), line)
        elif name == "syslog":
            syslog_send(settings.AUDIT_CHECKPOINT_SYSLOG, line)
        elif name == "http":
            http_post(settings.AUDIT_CHECKPOINT_URL, settings.AUDIT_CHECKPOINT_URL_TOKEN, line)
    return list(settings.AUDIT_CHECKPOINT_SINKS)


def local_file() -> Path | None:
    """The file sink this host writes, if it has one."""
    if "file" not in settings.AUDIT_CHECKPOINT_SINKS:
        return None
    return Path(settings.AUDIT_CHECKPOINT_FILE)


def lines_read(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, text in enumerate(fh, start=1):
            if text.strip():
                yield number, text.strip()


def line_last(path: Path, *, tail: int = 65536) -> str | None:
    """The last non-blank line, read from the end (the file only grows)."""
    if not path.exists():
        return None
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - tail))
        chunk = fh.read()
    lines = [line for line in chunk.decode("utf-8", errors="replace").splitlines() if line.strip()]
    if not lines or (size > tail and len(lines) == 1):
        # Nothing, or one line longer than the tail: read the file whole.
        whole = [text for _, text in lines_read(path)]
        return whole[-1] if whole else None
    return lines[-1].strip()
