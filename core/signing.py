"""Signed checkpoints of the audit chain, and the Ed25519 keys that sign them.

A checkpoint is a statement "after ``seq`` events the chain ended at event ``event_id``
whose hash is ``hash``", with the time, how the chain was checked before signing
(``verified``: ``full`` or ``incremental``) and the id of the key, signed with a key that
the database does not hold. Someone who can only write to the database can rewrite the
chain and its head row, but cannot make a checkpoint that agrees with the rewrite.

Where the key comes from (settings, README "Configuration"):

- ``AUDIT_SIGNING_KEY``: the 32-byte private key in base64;
- ``AUDIT_SIGNING_KEY_FILE``: a file holding the same, or a PEM (PKCS#8) Ed25519 key;
- neither, on the embedded default only: a key generated into
  ``$GOVSITE_VAR_DIR/audit_signing_key`` on first use (``AUDIT_LOCAL_SIGNING_KEY``).

``AUDIT_VERIFY_KEYS`` adds public keys (base64) whose checkpoints are accepted: a host
that verifies but never signs, and the keys retired by a rotation.
"""

import base64
import binascii
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

FORMAT = 1
KINDS = ("checkpoint", "restore")
VERIFIED = ("full", "incremental")


def _b64(text: str, where: str) -> bytes:
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"{where} is not base64") from None


def private_key_parse(text: str, *, where: str) -> Ed25519PrivateKey:
    """A private key from base64 of its 32 raw bytes, or from a PEM (PKCS#8) block."""
    if text.strip().startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.strip().encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ImproperlyConfigured(f"{where} is not an Ed25519 private key")
        return key
    raw = _b64(text, where)
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{where} must be 32 bytes in base64, got {len(raw)} bytes")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_parse(text: str, *, where: str) -> Ed25519PublicKey:
    """A public key from base64 of its 32 raw bytes, or from a PEM block."""
    if text.strip().startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.strip().encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ImproperlyConfigured(f"{where} is not an Ed25519 public key")
        return key
    raw = _b64(text, where)
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{where} must be 32 bytes in base64, got {len(raw)} bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """Names the key in each checkpoint: the first 16 hex digits of its SHA-256."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def key_generate() -> str:
    """A new private key in base64 (any 32 random bytes are an Ed25519 private key)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def local_key_create(path: Path) -> None:
    """Write a new key to ``path`` (mode 0600) unless one is there. Written whole to a
    private file and linked into place, so two processes starting together keep one key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key_generate() + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()


@lru_cache(maxsize=8)
def _signing_key(value: str, file: str, local: str) -> Ed25519PrivateKey | None:
    if value:
        return private_key_parse(value, where="AUDIT_SIGNING_KEY")
    if file:
        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise ImproperlyConfigured(f"AUDIT_SIGNING_KEY_FILE {file}: {exc}") from None
        return private_key_parse(text, where=f"AUDIT_SIGNING_KEY_FILE {file}")
    if local:
        if not Path(local).exists():
            local_key_create(Path(local))
        return private_key_parse(Path(local).read_text(), where=f"the local key {local}")
    return None


def _configured_signing_key() -> Ed25519PrivateKey | None:
    local = settings.AUDIT_LOCAL_SIGNING_KEY
    return _signing_key(
        settings.AUDIT_SIGNING_KEY, settings.AUDIT_SIGNING_KEY_FILE, str(local) if local else ""
    )


def signing_key() -> Ed25519PrivateKey:
    key = _configured_signing_key()
    if key is None:
        raise ImproperlyConfigured(
            "this host has no audit signing key (AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE):"
            " it verifies checkpoints but cannot write them"
        )
    return key


def verify_keys() -> dict[str, Ed25519PublicKey]:
    """Key id -> public key of every key whose checkpoints this host accepts."""
    keys = [
        public_key_parse(text, where=f"AUDIT_VERIFY_KEYS entry {n + 1}")
        for n, text in enumerate(settings.AUDIT_VERIFY_KEYS)
    ]
    own = _configured_signing_key()
    if own is not None:
        keys.append(own.public_key())
    return {key_id(key): key for key in keys}


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement; ``line()`` is how it is written to the sinks and stored."""

    seq: int
    event_id: int
    hash: str
    at: str
    verified: str
    kind: str = "checkpoint"
    reason: str = ""
    key: str = ""
    sig: str = ""

    def statement(self) -> dict[str, Any]:
        return {
            "v": FORMAT,
            "kind": self.kind,
            "seq": self.seq,
            "event_id": self.event_id,
            "hash": self.hash,
            "at": self.at,
            "verified": self.verified,
            "reason": self.reason,
            "key": self.key,
        }

    def message(self) -> bytes:
        return json.dumps(self.statement(), sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        signed = {**self.statement(), "sig": self.sig}
        return json.dumps(signed, sort_keys=True, separators=(",", ":"))

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.at)

    def label(self) -> str:
        what = "restore checkpoint" if self.kind == "restore" else "checkpoint"
        return f"the {what} of {self.at} ({self.seq} events, up to event #{self.event_id})"

    @classmethod
    def from_line(cls, text: str) -> "Checkpoint":
        """Parse a line written by ``line()``; text before its first ``{`` (a syslog
        prefix) is ignored. ValueError if it is not a checkpoint."""
        start = text.find("{")
        if start < 0:
            raise ValueError("no JSON object on the line")
        data = json.loads(text[start:])
        if not isinstance(data, dict) or data.get("v") != FORMAT:
            raise ValueError("not a version-1 audit checkpoint")
        ints = ("seq", "event_id")
        strs = ("hash", "at", "verified", "kind", "reason", "key", "sig")
        if any(type(data.get(f)) is not int or data[f] < 0 for f in ints) or any(
            not isinstance(data.get(f), str) for f in strs
        ):
            raise ValueError("a field is missing or has the wrong type")
        if data["kind"] not in KINDS or data["verified"] not in VERIFIED:
            raise ValueError(f"unknown kind {data['kind']!r} or verified {data['verified']!r}")
        checkpoint = cls(**{f: data[f] for f in ints + strs})
        checkpoint.when  # noqa: B018  (ValueError on a malformed time)
        return checkpoint


def checkpoint_sign(
    *,
    seq: int,
    event_id: int,
    hash: str,
    verified: str,
    kind: str = "checkpoint",
    reason: str = "",
) -> Checkpoint:
    key = signing_key()
    unsigned = Checkpoint(
        seq=seq,
        event_id=event_id,
        hash=hash,
        at=datetime.now(UTC).isoformat(timespec="microseconds"),
        verified=verified,
        kind=kind,
        reason=reason,
        key=key_id(key.public_key()),
    )
    return replace(unsigned, sig=base64.b64encode(key.sign(unsigned.message())).decode())


def signature_status(checkpoint: Checkpoint, keys: dict[str, Ed25519PublicKey]) -> str:
    """``ok``; ``unknown-key`` (another deployment's, or a retired key not listed in
    AUDIT_VERIFY_KEYS); or ``bad`` (the statement was altered, or forged)."""
    key = keys.get(checkpoint.key)
    if key is None:
        return "unknown-key"
    try:
        key.verify(base64.b64decode(checkpoint.sig, validate=True), checkpoint.message())
    except (InvalidSignature, binascii.Error, ValueError):
        return "bad"
    return "ok"
