import shutil

import pytest

from core.audit import audit_record
from core.signing import key_generate


@pytest.fixture
def signing_key(settings):
    """A fresh signing key for the test; the file sink only (conftest's per-test file)."""
    settings.AUDIT_SIGNING_KEY = key_generate()
    settings.AUDIT_SIGNING_KEY_FILE = ""
    settings.AUDIT_VERIFY_KEYS = []
    settings.AUDIT_CHECKPOINT_SINKS = ["file"]
    settings.AUDIT_CHECKPOINT_EVERY = 0
    return settings.AUDIT_SIGNING_KEY


@pytest.fixture
def trail(db, signing_key, approver, ml_engineer):
    """trail(n) -> n more audit events by two people and the system."""

    def record(n: int) -> list:
        actors = [approver, ml_engineer, None]
        return [
            audit_record(action=f"test.step{i}", actor=actors[i % 3], payload={"i": i})
            for i in range(n)
        ]

    return record


@pytest.fixture
def collector(settings, tmp_path):
    """collector() -> a copy of the checkpoints written so far, as a log collector on
    another host holds them; the local file sink is then switched off, so only the
    given copy (and the database's, which an attacker may delete) is known."""

    def take():
        copy = tmp_path / "collector.jsonl"
        shutil.copy(settings.AUDIT_CHECKPOINT_FILE, copy)
        settings.AUDIT_CHECKPOINT_SINKS = []
        return copy

    return take
