"""Verifying the audit trail: its hash chain, and the chain against signed checkpoints.

The chain alone catches careless tampering: an edited row no longer matches its hash, a
deleted one breaks the link of the next. Someone with write access to the database can
recompute every later hash and the head row, though, or empty both tables. Checkpoints
(core.signing), signed with a key the database does not hold and written to sinks
outside it (core.sinks), pin the chain's head at points in time: a rewrite, deletion or
truncation of anything they cover is reported. docs/governance.md lists precisely what
is and is not detected.

A **full** verification walks every event and checks it against every checkpoint. An
**incremental** one (the audit page) starts at the newest checkpoint: it checks that the
checkpoint's event is still there with its hash and that as many events lead up to it
as the checkpoint counted, then walks the events after it. Its cost is the events since
that checkpoint plus one count, not the whole trail.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.models import AuditChainHead, AuditCheckpoint, AuditEvent
from core.signing import Checkpoint, signature_status, verify_keys
from core.sinks import line_last, lines_read, local_file

GENESIS = "0" * 64  # prev_hash of the first event (core.audit.GENESIS)


@dataclass(frozen=True)
class Position:
    """A point in the chain: ``seq`` events, the last being ``event_id`` with ``hash``."""

    seq: int = 0
    event_id: int = 0
    hash: str = GENESIS


@dataclass
class ChainReport:
    ok: bool
    checked: int = 0
    broken_id: int | None = None
    reason: str = ""
    full: bool = True
    # How far the chain verified: what a new checkpoint may sign.
    position: Position = field(default_factory=Position)
    # Where an incremental verification started; the newest checkpoint checked against;
    # the newest one signed after a full verification.
    anchor: Checkpoint | None = None
    latest: Checkpoint | None = None
    last_full: Checkpoint | None = None
    # The newest checkpoint the chain was found to contain.
    matched: Checkpoint | None = None
    # Checkpoints beyond the chain's end (only when verifying a restore).
    lost: list[Checkpoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Checkpoints that verified from the files the caller gave.
    given: int = 0


class Broken(Exception):
    def __init__(self, event_id: int | None, reason: str) -> None:
        super().__init__(reason)
        self.event_id = event_id
        self.reason = reason


@dataclass
class Known:
    """The checkpoints that verify, what failed to verify, and what was skipped."""

    trusted: list[Checkpoint] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    given: int = 0


def _sources(files: Sequence[Path], *, every: bool) -> Iterable[tuple[str, str, bool]]:
    """(where, line, given) of the checkpoints to read: the given files whole; the local
    file sink whole (``every``) or its last line; the database's copies (all, or the
    newest and the newest full one, plus every restore)."""
    for path in files:
        for number, text in lines_read(path):
            yield f"{path}:{number}", text, True
    local = local_file()
    if local is not None and local.exists() and local not in files:
        if every:
            for number, text in lines_read(local):
                yield f"{local}:{number}", text, False
        else:
            last = line_last(local)
            if last is not None:
                yield f"{local} (last line)", last, False
    rows = AuditCheckpoint.objects.order_by("-seq", "-created_at")
    if not every:
        newest = list(rows[:1]) + list(rows.filter(verified="full").order_by("-created_at")[:1])
        rows = rows.filter(pk__in=[r.pk for r in newest]) | rows.filter(kind="restore")
    for row in rows:
        yield f"database checkpoint row {row.pk}", row.line, False


def checkpoints_known(files: Sequence[Path] = (), *, every: bool) -> Known:
    keys: dict[str, Ed25519PublicKey] = verify_keys()
    known = Known()
    seen: set[str] = set()
    unknown = 0
    for where, text, given in _sources(files, every=every):
        try:
            checkpoint = Checkpoint.from_line(text)
        except ValueError as exc:
            if where.startswith("database"):
                known.problems.append(f"{where} is not a checkpoint ({exc})")
            continue  # another program's line in a shared log file
        status = signature_status(checkpoint, keys)
        if status == "bad":
            known.problems.append(
                f"{where}: the signature of {checkpoint.label()} does not verify "
                "(the statement was altered or forged)"
            )
        elif status == "unknown-key":
            unknown += 1
        else:
            known.given += given
            if checkpoint.sig not in seen:
                seen.add(checkpoint.sig)
                known.trusted.append(checkpoint)
    if unknown:
        known.notes.append(
            f"{unknown} checkpoint(s) signed by keys this host does not know were skipped "
            "(another deployment's, or a retired key missing from AUDIT_VERIFY_KEYS)"
        )
    return known


def superseded(checkpoint: Checkpoint, restores: Sequence[Checkpoint]) -> bool:
    """A checkpoint taken before an accepted restore, beyond the restored chain's end."""
    return any(
        checkpoint.kind == "checkpoint" and checkpoint.when < r.when and checkpoint.seq > r.seq
        for r in restores
    )


def _walk(
    report: ChainReport,
    *,
    start: Position,
    limit: int | None,
    expect: dict[int, list[Checkpoint]],
) -> Position:
    """Recompute hash and link of up to ``limit`` events after ``start``; each position
    that a checkpoint names must hold that checkpoint's event and hash."""
    events = AuditEvent.objects.filter(pk__gt=start.event_id).order_by("id")
    if limit is not None:
        events = events[: max(limit, 0)]
    position = start
    for event in events.iterator(chunk_size=2000):
        if event.prev_hash != position.hash:
            raise Broken(
                event.pk,
                "link to the previous event is broken (an earlier event was edited or deleted)",
            )
        if event.compute_hash() != event.row_hash:
            raise Broken(event.pk, "content does not match its hash (the event was edited)")
        position = Position(position.seq + 1, event.pk, event.row_hash)
        report.checked += 1
        for checkpoint in expect.get(position.seq, ()):
            if (checkpoint.event_id, checkpoint.hash) != (event.pk, event.row_hash):
                raise Broken(
                    event.pk,
                    f"the chain does not match {checkpoint.label()}: events up to it were "
                    "rewritten (hashes recomputed), inserted or deleted",
                )
            report.matched = checkpoint
    return position


def _anchor_check(checkpoint: Checkpoint, head: AuditChainHead | None) -> Position:
    if checkpoint.seq == 0:
        return Position()
    recorded = head.count if head is not None else 0
    if recorded < checkpoint.seq:
        raise Broken(
            None,
            f"{checkpoint.label()} covers {checkpoint.seq} events but the chain head records "
            f"{recorded}: events were deleted, or the audit tables emptied",
        )
    event = AuditEvent.objects.filter(pk=checkpoint.event_id).first()
    if event is None or event.row_hash != checkpoint.hash:
        raise Broken(
            checkpoint.event_id,
            f"event #{checkpoint.event_id} no longer has the hash of {checkpoint.label()}: "
            "it was deleted, or the chain up to it rewritten",
        )
    if event.compute_hash() != event.row_hash:
        raise Broken(event.pk, "content does not match its hash (the event was edited)")
    before = AuditEvent.objects.filter(pk__lte=checkpoint.event_id).count()
    if before != checkpoint.seq:
        raise Broken(
            None,
            f"{before} events lead up to event #{checkpoint.event_id}, {checkpoint.label()} "
            f"counted {checkpoint.seq}: events before it were deleted or inserted",
        )
    return Position(checkpoint.seq, checkpoint.event_id, checkpoint.hash)


def _tail_check(position: Position, head: AuditChainHead | None) -> None:
    if head is None:
        if position.seq:
            raise Broken(None, "the chain head row is missing (its table was emptied)")
        return
    if position.seq < head.count:
        raise Broken(
            position.event_id or None,
            "the newest events were deleted "
            f"(chain head records {head.count} events, found {position.seq})",
        )
    if position.hash != head.last_hash:
        raise Broken(
            position.event_id or None,
            "the chain head does not match the last event (the head or the newest events "
            "were changed)",
        )


def chain_verify(
    *, full: bool = True, files: Sequence[Path] = (), restoring: bool = False
) -> ChainReport:
    """Verify the chain, whole (``full``) or from the newest checkpoint, against the
    checkpoints in ``files``, the local file sink and the database's copies.

    ``restoring``: checkpoints beyond the chain's end are listed in ``report.lost``
    instead of failing it (core.checkpoints.audit_restore_accept)."""
    known = checkpoints_known(files, every=full)
    report = ChainReport(ok=True, full=full, notes=known.notes, given=known.given)
    if known.problems:
        report.ok, report.reason = False, "; ".join(known.problems)
        return report
    restores = [c for c in known.trusted if c.kind == "restore"]
    live = [c for c in known.trusted if not superseded(c, restores)]
    report.latest = max(live, key=lambda c: (c.seq, c.when), default=None)
    fulls = [c for c in known.trusted if c.verified == "full"]
    report.last_full = max(fulls, key=lambda c: c.when, default=None)
    # The head is read after the checkpoints and before the events: events appended
    # while this runs are beyond it and left for the next verification.
    head = AuditChainHead.objects.filter(pk=1).first()
    try:
        if full or report.latest is None:
            report.full = True
            expect: dict[int, list[Checkpoint]] = {}
            for checkpoint in live:
                expect.setdefault(checkpoint.seq, []).append(checkpoint)
            start = Position()
        else:
            report.anchor = report.matched = report.latest
            expect, start = {}, _anchor_check(report.latest, head)
        limit = head.count - start.seq if head is not None else None
        report.position = _walk(report, start=start, limit=limit, expect=expect)
        beyond = [c for c in live if c.seq > report.position.seq]
        if beyond and restoring:
            report.lost = beyond
        elif beyond:
            newest = max(beyond, key=lambda c: c.seq)
            raise Broken(
                report.position.event_id or None,
                f"{newest.label()} covers {newest.seq} events but the chain has "
                f"{report.position.seq}: the newest events were deleted, or the audit "
                "tables emptied",
            )
        _tail_check(report.position, head)
    except Broken as broken:
        report.ok, report.broken_id, report.reason = False, broken.event_id, broken.reason
    return report
