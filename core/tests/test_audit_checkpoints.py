"""Signed checkpoints: keys, sinks, publication, restores, the schedule and the worker."""

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from core import audit as audit_module
from core.audit import audit_verify
from core.checkpoints import audit_checkpoint_create
from core.models import AuditCheckpoint, AuditEvent, Notification
from core.signing import (
    Checkpoint,
    key_generate,
    key_id,
    private_key_parse,
    public_key_text,
    signature_status,
    verify_keys,
)
from core.tasks import audit_checkpoint
from core.tests import tamper
from core.tests.support import checkpoint, verify

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def _lines(path: Path) -> list[Checkpoint]:
    return [Checkpoint.from_line(line) for line in path.read_text().splitlines()]


def test_a_checkpoint_is_signed_appended_to_the_file_and_stored(trail, settings):
    events = trail(5)
    out = checkpoint()
    [written] = _lines(settings.AUDIT_CHECKPOINT_FILE)
    assert (written.seq, written.event_id, written.hash) == (5, events[-1].pk, events[-1].row_hash)
    assert written.verified == "full"  # the first one walks the whole chain
    assert signature_status(written, verify_keys()) == "ok"
    assert written.line() in out
    row = AuditCheckpoint.objects.get()
    assert row.line == written.line() and row.seq == 5
    trail(2)
    checkpoint()
    assert [c.verified for c in _lines(settings.AUDIT_CHECKPOINT_FILE)] == ["full", "incremental"]
    # The file is only ever appended to.
    assert _lines(settings.AUDIT_CHECKPOINT_FILE)[0] == written


def test_the_periodic_task_skips_an_unmoved_head_but_the_nightly_one_signs(trail, settings):
    trail(3)
    assert audit_checkpoint() == 3
    assert audit_checkpoint() is None
    assert audit_checkpoint(full=True) == 3
    assert [c.verified for c in _lines(settings.AUDIT_CHECKPOINT_FILE)] == ["full", "full"]


def test_a_broken_chain_gets_no_checkpoint_and_the_auditors_are_told(trail, auditor, settings):
    events = trail(3)
    audit_checkpoint()
    tamper.rewrite(events[0].pk, actor_label="ghost")
    assert audit_checkpoint() is None
    assert audit_checkpoint() is None
    assert len(_lines(settings.AUDIT_CHECKPOINT_FILE)) == 1
    [note] = Notification.objects.filter(event="audit.chain_broken")  # once, not per run
    assert "no longer has the hash of the checkpoint" in note.subject
    assert note.recipients == [auditor.email]


def test_every_n_events_a_checkpoint_is_queued(trail, settings, monkeypatch):
    queued = []
    monkeypatch.setattr(audit_module, "enqueue_on_commit", lambda task, *a: queued.append(task))
    settings.AUDIT_CHECKPOINT_EVERY = 4
    trail(9)
    assert queued == ["core.tasks.audit_checkpoint"] * 2


def test_the_signature_covers_every_field(trail):
    trail(2)
    written = audit_checkpoint_create()
    keys = verify_keys()
    assert signature_status(Checkpoint.from_line(written.line()), keys) == "ok"
    changes = {
        "seq": 1,
        "event_id": 1,
        "hash": "0" * 64,
        "at": "2020-01-01T00:00:00+00:00",
        "verified": "incremental",
        "kind": "restore",
        "reason": "x",
    }
    for field, value in changes.items():
        forged = Checkpoint(**{**written.__dict__, field: value})
        assert signature_status(forged, keys) == "bad", field
    assert signature_status(Checkpoint(**{**written.__dict__, "key": "f" * 16}), keys) == (
        "unknown-key"
    )


def test_a_pem_key_file_and_a_generated_local_key(settings, tmp_path, trail):
    from cryptography.hazmat.primitives import serialization

    key = private_key_parse(key_generate(), where="test")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "audit.pem").write_bytes(pem)
    settings.AUDIT_SIGNING_KEY = ""
    settings.AUDIT_SIGNING_KEY_FILE = str(tmp_path / "audit.pem")
    trail(1)
    assert audit_checkpoint_create().key == key_id(key.public_key())

    settings.AUDIT_SIGNING_KEY_FILE = ""
    settings.AUDIT_LOCAL_SIGNING_KEY = tmp_path / "state" / "audit_signing_key"
    made = audit_checkpoint_create(force=True)
    local = settings.AUDIT_LOCAL_SIGNING_KEY
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    assert made.key == key_id(private_key_parse(local.read_text(), where="t").public_key())
    assert len(base64.b64decode(local.read_text().strip())) == 32


def test_a_host_without_a_signing_key_cannot_sign(settings, trail):
    trail(1)
    settings.AUDIT_SIGNING_KEY, settings.AUDIT_LOCAL_SIGNING_KEY = "", None
    with pytest.raises(ImproperlyConfigured, match="no audit signing key"):
        checkpoint()


def test_a_rotated_key_keeps_its_checkpoints_through_verify_keys(trail, settings):
    trail(2)
    checkpoint()
    old = public_key_text(private_key_parse(settings.AUDIT_SIGNING_KEY, where="t").public_key())
    settings.AUDIT_SIGNING_KEY = key_generate()
    trail(1)
    report = audit_verify()
    assert report.ok and report.latest is None and "skipped" in report.notes[0]
    settings.AUDIT_VERIFY_KEYS = [old]
    checkpoint()
    report = audit_verify()
    assert report.ok and report.latest.seq == 3 and not report.notes
    assert {c.key for c in _lines(settings.AUDIT_CHECKPOINT_FILE)} == {
        key_id(k) for k in verify_keys().values()
    }


# --- restores ---------------------------------------------------------------------------


def test_a_restore_from_backup_is_accepted_explicitly_and_audited(trail, settings):
    trail(6)
    checkpoint()
    trail(4)
    checkpoint()
    # The database comes back from the backup taken after the first checkpoint.
    tamper.drop_tail(4, head="fix")
    with pytest.raises(CommandError, match="covers 10 events but the chain has 6"):
        verify()
    with pytest.raises(CommandError, match="covers 10 events"):
        checkpoint()  # the periodic checkpoint refuses too

    out = checkpoint("--after-restore", "restored the 02:00 backup after disk loss, INC-42")
    assert "1 checkpoint(s) beyond event 6 superseded" in out
    accepted = AuditEvent.objects.get(action="audit.restore_accepted")
    assert accepted.payload["reason"].endswith("INC-42")
    assert accepted.payload["events_at_newest_checkpoint"] == 10
    trail(5)
    checkpoint()
    assert "audit chain intact: 12 events" in verify()
    assert "audit chain intact" in verify("--incremental")
    restore = [c for c in _lines(settings.AUDIT_CHECKPOINT_FILE) if c.kind == "restore"]
    assert restore[0].seq == 6 and restore[0].reason.endswith("INC-42")


def test_a_restore_is_refused_unless_a_checkpoint_vouches_for_the_restored_chain(trail):
    events = trail(4)
    checkpoint()
    with pytest.raises(CommandError, match="nothing to accept"):
        checkpoint("--after-restore", "no reason")
    trail(2)
    checkpoint()
    # A rewrite cut short is not a restore: the first checkpoint no longer matches.
    tamper.drop_tail(1, head="fix")
    tamper.rewrite(events[0].pk, actor_label="ghost")
    with pytest.raises(CommandError, match="no checkpoint signed"):
        checkpoint("--after-restore", "covering up")
    # Cut before the first checkpoint, nothing vouches for what is left.
    tamper.drop_tail(3, head="fix")
    with pytest.raises(CommandError, match="no checkpoint lies within the restored chain"):
        checkpoint("--after-restore", "covering up")
    assert not AuditEvent.objects.filter(action="audit.restore_accepted").exists()


# --- sinks ------------------------------------------------------------------------------


class _Collector(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers.get("Authorization"), body.decode()))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_collector():
    _Collector.received, _Collector.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/checkpoints", _Collector
    server.shutdown()


@pytest.fixture
def syslog_collector():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield f"127.0.0.1:{sock.getsockname()[1]}", sock
    sock.close()


def test_syslog_and_http_sinks_receive_the_same_signed_line(
    trail, settings, http_collector, syslog_collector
):
    url, collector = http_collector
    address, sock = syslog_collector
    settings.AUDIT_CHECKPOINT_SINKS = ["file", "syslog", "http"]
    settings.AUDIT_CHECKPOINT_SYSLOG = address
    settings.AUDIT_CHECKPOINT_URL, settings.AUDIT_CHECKPOINT_URL_TOKEN = url, "collector-token"
    trail(2)
    written = audit_checkpoint_create()
    message = sock.recv(65536).decode()
    assert message.startswith("<37>govsite-audit: {")
    assert Checkpoint.from_line(message) == written
    [(authorization, body)] = collector.received
    assert authorization == "Bearer collector-token" and json.loads(body)["sig"] == written.sig
    # A collector's syslog file, prefixes and all, is what audit_verify is given.
    log = settings.AUDIT_CHECKPOINT_FILE.parent / "auth.log"
    log.write_text(f"Nov 29 10:00:01 web1 sshd[1]: unrelated\nNov 29 10:00:02 web1 {message}\n")
    settings.AUDIT_CHECKPOINT_SINKS = []
    tamper.forget_checkpoints()
    assert "matches the checkpoint" in verify("--checkpoints", log)


def test_a_failing_sink_stores_no_checkpoint_and_the_task_retries(trail, settings, http_collector):
    url, collector = http_collector
    collector.status = 503
    settings.AUDIT_CHECKPOINT_SINKS = ["http"]
    settings.AUDIT_CHECKPOINT_URL = url
    trail(1)
    with pytest.raises(OSError):
        audit_checkpoint_create()
    assert not AuditCheckpoint.objects.exists()
    assert OSError in audit_checkpoint.autoretry_for


def test_the_last_line_is_read_from_the_end_of_a_long_file(tmp_path):
    from core.sinks import line_last

    path = tmp_path / "c.jsonl"
    path.write_text("".join(f'{{"n": {i}}}\n' for i in range(20000)) + "\n")
    assert line_last(path) == '{"n": 19999}'
    path.write_text("x" * 100000 + "\n")
    assert line_last(path) == "x" * 100000


# --- configuration and schedule ---------------------------------------------------------

SETTINGS_PROBE = "import django; django.setup(); from django.conf import settings; print('ok')"


@pytest.mark.parametrize(
    "env, error",
    [
        ({}, "production mode needs AUDIT_SIGNING_KEY"),
        ({"AUDIT_SIGNING_KEY": "x"}, None),
        ({"AUDIT_VERIFY_KEYS": "x"}, None),
        ({"AUDIT_SIGNING_KEY": "x", "AUDIT_CHECKPOINT_SINKS": "file,s3"}, "unknown ['s3']"),
        ({"AUDIT_SIGNING_KEY": "x", "AUDIT_CHECKPOINT_SINKS": "http"}, "AUDIT_CHECKPOINT_URL"),
    ],
)
def test_production_mode_needs_a_key_and_known_sinks(tmp_path, env, error):
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AUDIT_") and k not in ("DEBUG", "DATABASE_URL")
    }
    base.update(
        DJANGO_SETTINGS_MODULE="govsite.settings",
        GOVSITE_VAR_DIR=str(tmp_path),
        DATABASE_URL="postgres://nobody@127.0.0.1:1/none",
        SECRET_KEY="s" * 50,
        **env,
    )
    result = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE],
        env=base,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if error is None:
        assert result.returncode == 0, result.stderr[-2000:]
    else:
        assert result.returncode != 0 and error in result.stderr


def test_the_migrations_schedule_checkpoints_full_verification_and_summaries():
    entries = {e.name: e for e in PeriodicTask.objects.filter(name__startswith="core: ")}
    checkpoint_entry = entries["core: audit checkpoint"]
    assert checkpoint_entry.task == "core.tasks.audit_checkpoint"
    assert (checkpoint_entry.interval.every, checkpoint_entry.interval.period) == (10, "minutes")
    full = entries["core: full audit verification"]
    assert json.loads(full.kwargs) == {"full": True} and full.crontab.hour == "2"
    assert entries["core: summarise repeated audit events"].task == "core.tasks.audit_repeats_close"
