"""Tampering with the audit tables in SQL, and what `manage.py audit_verify` says.

The chain alone said "intact" after an edit with every later hash recomputed, after the
newest events were deleted with the chain head, and after both tables were truncated.
Each case below first reproduces that (no checkpoint available: the attacker also
deleted the database's copies, and the local file sink is off), then shows that the
checkpoints from the external sink expose it.
"""

import pytest
from django.core.management.base import CommandError
from django.db import connection

from core.models import AuditChainHead, AuditCheckpoint, AuditEvent
from core.signing import Checkpoint
from core.tests import tamper
from core.tests.support import checkpoint, verify

pytestmark = pytest.mark.django_db


def _rewrite(events):
    tamper.rewrite(events[4].pk, actor_label="someone_else", action="test.harmless")


def _tail_and_head(events):
    tamper.drop_tail(3, head="delete")


def _tail_head_fixed(events):
    tamper.drop_tail(3, head="fix")


def _truncate(events):
    if connection.vendor != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's; the 'tables emptied' case covers SQLite")
    tamper.truncate()


def _empty(events):
    tamper.empty()


INTACT = "audit chain intact"
# case: (attack, what the chain alone says now, what the external checkpoints say)
BYPASSES = {
    "edited, later hashes recomputed": (_rewrite, INTACT, "does not match the checkpoint"),
    # The chain alone now notices a missing head row (the old check skipped it) ...
    "newest events deleted with the head": (
        _tail_and_head,
        "chain head row is missing",
        "covers 10 events but the chain has 7",
    ),
    # ... but not a head made to match the shortened chain.
    "newest events deleted, head fixed": (
        _tail_head_fixed,
        INTACT,
        "covers 10 events but the chain has 7",
    ),
    "tables truncated": (_truncate, INTACT, "covers 10 events but the chain has 0"),
    "tables emptied": (_empty, INTACT, "covers 10 events but the chain has 0"),
}


@pytest.mark.parametrize("case", list(BYPASSES))
def test_what_the_chain_alone_missed_is_reported_given_the_external_checkpoints(
    trail, collector, case
):
    attack, alone, message = BYPASSES[case]
    events = trail(10)
    checkpoint()
    external = collector()

    attack(events)
    tamper.forget_checkpoints()
    # The bypass as it was: with nothing outside the database, the chain looks intact.
    if alone == INTACT:
        assert INTACT in verify()
    else:
        with pytest.raises(CommandError, match=alone):
            verify()

    with pytest.raises(CommandError) as refused:
        verify("--checkpoints", external)
    assert message in str(refused.value)
    # The page's way (from the newest checkpoint) sees it too.
    with pytest.raises(CommandError):
        verify("--incremental", "--checkpoints", external)


def test_the_local_file_sink_is_found_without_being_given(trail):
    events = trail(6)
    checkpoint()
    tamper.rewrite(events[1].pk, actor_label="nobody")
    tamper.forget_checkpoints()
    with pytest.raises(CommandError, match="does not match the checkpoint"):
        verify()


def test_an_edit_that_leaves_the_hashes_is_named_as_before(trail):
    events = trail(5)
    checkpoint()
    tamper.edit(events[2].pk, actor_label="mallory")
    with pytest.raises(CommandError) as refused:
        verify()
    assert f"#{events[2].pk}" in str(refused.value) and "content does not match" in str(
        refused.value
    )


def test_a_deleted_event_in_the_middle_is_named(trail):
    events = trail(5)
    checkpoint()
    tamper.delete(events[2].pk)
    with pytest.raises(CommandError, match=f"#{events[3].pk}: link to the previous event"):
        verify()
    with pytest.raises(CommandError, match="events before it were deleted or inserted"):
        verify("--incremental")


def test_events_after_the_newest_checkpoint_are_verified_by_the_chain(trail):
    trail(4)
    checkpoint()
    later = trail(3)
    assert "audit chain intact: 7 events" in verify("--incremental")
    tamper.edit(later[1].pk, action="test.other")
    with pytest.raises(CommandError, match="content does not match its hash"):
        verify("--incremental")


def test_a_checkpoint_row_altered_in_the_database_is_reported(trail):
    trail(3)
    checkpoint()
    row = AuditCheckpoint.objects.get()
    forged = Checkpoint.from_line(row.line)
    altered = row.line.replace(f'"seq":{forged.seq}', f'"seq":{forged.seq - 1}')
    AuditCheckpoint.objects.filter(pk=row.pk).update(line=altered)
    with pytest.raises(CommandError, match="does not verify \\(the statement was altered"):
        verify()


def test_a_checkpoint_signed_by_another_key_is_skipped_not_trusted(trail, settings, collector):
    trail(3)
    checkpoint()
    external = collector()
    ours = settings.AUDIT_SIGNING_KEY
    tamper.empty()
    settings.AUDIT_SIGNING_KEY = "A" * 43 + "="  # the attacker's own key
    checkpoint()  # the empty chain, signed and stored in the database
    settings.AUDIT_SIGNING_KEY = ours
    with pytest.raises(CommandError, match="covers 3 events but the chain has 0"):
        verify("--checkpoints", external)


def test_a_verifying_host_without_the_signing_key(trail, settings, collector):
    from core.signing import private_key_parse, public_key_text

    trail(3)
    checkpoint()
    external = collector()
    public = public_key_text(private_key_parse(settings.AUDIT_SIGNING_KEY, where="t").public_key())
    settings.AUDIT_SIGNING_KEY, settings.AUDIT_LOCAL_SIGNING_KEY = "", None
    settings.AUDIT_VERIFY_KEYS = [public]
    assert "matches the checkpoint" in verify("--checkpoints", external)
    with pytest.raises(CommandError, match="no checkpoint in the given files"):
        settings.AUDIT_VERIFY_KEYS = []
        verify("--checkpoints", external)


def test_the_chain_head_row_alone_deleted_is_reported(trail):
    trail(3)
    AuditChainHead.objects.all().delete()
    with pytest.raises(CommandError, match="chain head row is missing"):
        verify()


def test_no_checkpoint_is_signed_over_a_broken_chain(trail, settings):
    events = trail(4)
    checkpoint()
    tamper.rewrite(events[0].pk, actor_label="x")
    lines = settings.AUDIT_CHECKPOINT_FILE.read_text().splitlines()
    with pytest.raises(CommandError, match="no checkpoint signed"):
        checkpoint()
    assert settings.AUDIT_CHECKPOINT_FILE.read_text().splitlines() == lines
    assert AuditEvent.objects.count() == 4
