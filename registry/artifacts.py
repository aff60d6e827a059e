"""Content-addressed artifact store with verify-before-load and an in-process booster cache.

Files live under settings.ARTIFACT_ROOT as `<sha[:2]>/<sha><suffix>`, so a path is
derived from the content and never from a caller-supplied name (no traversal).
"""

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import xgboost as xgb
from django.conf import settings

from core.errors import DomainError
from registry.training import load_booster

ALLOWED_SUFFIXES = {".json", ".ubj", ".npz"}


class ArtifactIntegrityError(DomainError):
    """The file on disk does not match the SHA-256 recorded in the registry (409);
    `details` carries both hashes, after whatever the caller adds in `details`."""

    status = 409

    def __init__(
        self, message: str, *, expected: str, actual: str | None, details: dict | None = None
    ):
        hashes = {"expected_sha256": expected, "actual_sha256": actual or ""}
        super().__init__(message, {**(details or {}), **hashes})
        self.expected = expected
        self.actual = actual


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _path_for(sha: str, suffix: str) -> Path:
    if (
        suffix not in ALLOWED_SUFFIXES
        or len(sha) != 64
        or not all(c in "0123456789abcdef" for c in sha)
    ):
        raise ValueError("invalid artifact address")
    return Path(settings.ARTIFACT_ROOT) / artifact_relpath(sha, suffix)


def artifact_relpath(sha: str, suffix: str) -> str:
    """Where the store keeps the file with this hash, relative to ARTIFACT_ROOT."""
    return f"{sha[:2]}/{sha}{suffix}"


def artifact_put(*, data: bytes, suffix: str) -> tuple[str, str]:
    """Store bytes (idempotent); returns (sha256, path relative to ARTIFACT_ROOT)."""
    sha = sha256_bytes(data)
    path = _path_for(sha, suffix)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return sha, artifact_relpath(sha, suffix)


def artifact_get(*, sha: str, relpath: str) -> bytes:
    """Read a stored file and verify its SHA-256 before returning it."""
    path = (Path(settings.ARTIFACT_ROOT) / relpath).resolve()
    root = Path(settings.ARTIFACT_ROOT).resolve()
    if root not in path.parents:
        raise ArtifactIntegrityError("artifact path escapes the store", expected=sha, actual=None)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactIntegrityError(
            f"artifact {relpath} is missing from the store", expected=sha, actual=None
        ) from None
    actual = sha256_bytes(data)
    if actual != sha:
        raise ArtifactIntegrityError(
            f"artifact {relpath} failed verification: SHA-256 {actual[:12]}… does not match "
            f"the registered {sha[:12]}…",
            expected=sha,
            actual=actual,
        )
    return data


class _BoosterCache:
    """LRU of loaded boosters keyed by artifact hash.

    An entry remembers the file's inode, size, mtime and ctime; if any changes the file
    is re-verified, so a file altered after loading is still refused, also when the
    writer put its size and mtime back (only the kernel sets ctime).
    """

    def __init__(self, size: int = 8):
        self.size = size
        self.lock = threading.Lock()
        self.entries: OrderedDict[str, tuple[tuple[int, ...] | None, xgb.Booster]] = OrderedDict()

    def get(self, sha: str, relpath: str) -> xgb.Booster:
        path = Path(settings.ARTIFACT_ROOT) / relpath
        try:
            st = path.stat()
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except FileNotFoundError:
            stamp = None
        with self.lock:
            entry = self.entries.get(sha)
            if entry is not None and entry[0] == stamp:
                self.entries.move_to_end(sha)
                return entry[1]
        booster = load_booster(artifact_get(sha=sha, relpath=relpath))
        with self.lock:
            self.entries[sha] = (stamp, booster)
            self.entries.move_to_end(sha)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return booster

    def clear(self):
        with self.lock:
            self.entries.clear()


booster_cache = _BoosterCache()
