"""Writing checkpoints of the audit chain: verify, sign the head, publish.

A checkpoint is only signed after the chain verified up to the head it names (from the
previous checkpoint, or whole), so a later checkpoint never blesses a rewrite of what an
earlier one covered. Publishing writes the signed line to the external sinks first
(they are the authority) and then stores the database's copy.

Callers: the beat entries ``core: audit checkpoint`` (every 10 minutes) and ``core: full
audit verification`` (nightly), ``audit_record`` every ``AUDIT_CHECKPOINT_EVERY`` events,
and ``manage.py audit_checkpoint``.
"""

from core.audit import audit_record
from core.integrity import ChainReport, chain_verify
from core.models import AuditCheckpoint
from core.signing import Checkpoint, checkpoint_sign
from core.sinks import sinks_write


class AuditChainBroken(Exception):
    """The chain did not verify, so no checkpoint was signed."""

    def __init__(self, report: ChainReport) -> None:
        where = f" at event #{report.broken_id}" if report.broken_id else ""
        super().__init__(f"audit chain broken{where}: {report.reason}")
        self.report = report


def checkpoint_publish(checkpoint: Checkpoint) -> Checkpoint:
    line = checkpoint.line()
    sinks_write(line)
    AuditCheckpoint.objects.create(
        seq=checkpoint.seq,
        kind=checkpoint.kind,
        verified=checkpoint.verified,
        created_at=checkpoint.when,
        line=line,
    )
    return checkpoint


def audit_checkpoint_create(*, full: bool = False, force: bool = False) -> Checkpoint | None:
    """Verify the chain (from the newest checkpoint, or whole when ``full``), then sign
    its head and publish it. None when the newest checkpoint already names the head and
    neither ``full`` nor ``force`` asks for a new one. AuditChainBroken if it fails."""
    report = chain_verify(full=full)
    if not report.ok:
        raise AuditChainBroken(report)
    latest, position = report.latest, report.position
    unchanged = latest is not None and (latest.seq, latest.hash) == (position.seq, position.hash)
    if unchanged and not (full or force):
        return None
    checkpoint = checkpoint_sign(
        seq=position.seq,
        event_id=position.event_id,
        hash=position.hash,
        verified="full" if report.full else "incremental",
    )
    return checkpoint_publish(checkpoint)


def audit_restore_accept(*, reason: str) -> tuple[Checkpoint, list[Checkpoint]]:
    """After restoring the database from a backup: the chain verifies whole but ends
    before the newest checkpoints. Sign a restore checkpoint of the restored end, which
    supersedes the checkpoints taken before it beyond that end (they stay in the sinks
    and are reported as history lost in the restore), and record the acceptance.

    Refuses (AuditChainBroken) a chain that does not verify up to its end, and
    (ValueError) one that no checkpoint goes beyond."""
    report = chain_verify(full=True, restoring=True)
    if not report.ok:
        raise AuditChainBroken(report)
    if not report.lost:
        raise ValueError("nothing to accept: no checkpoint goes beyond the chain's end")
    if report.matched is None:
        # Else a rewritten chain cut short would pass for a restore.
        raise ValueError(
            "no checkpoint lies within the restored chain, so nothing shows it is the chain "
            "that was checkpointed: restore a backup taken after a checkpoint"
        )
    position, newest = report.position, max(report.lost, key=lambda c: c.seq)
    checkpoint = checkpoint_publish(
        checkpoint_sign(
            seq=position.seq,
            event_id=position.event_id,
            hash=position.hash,
            verified="full",
            kind="restore",
            reason=reason,
        )
    )
    audit_record(
        action="audit.restore_accepted",
        payload={
            "reason": reason,
            "events_after_restore": position.seq,
            "events_at_newest_checkpoint": newest.seq,
            "newest_checkpoint_at": newest.at,
            "checkpoints_superseded": len(report.lost),
            "matched_checkpoint_at": report.matched.at,
            "events_not_covered": position.seq - report.matched.seq,
            "restore_checkpoint_at": checkpoint.at,
        },
    )
    return checkpoint, report.lost
