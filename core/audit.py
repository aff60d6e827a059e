"""The append-only, hash-chained audit trail.

Each event stores SHA-256 over its canonical JSON content, which includes the
previous event's hash. Appends lock the single AuditChainHead row, so concurrent
writers are serialised and the chain never forks. `audit_verify` walks the chain
and reports the first event whose stored hash or link does not match, and checks it
against the signed checkpoints kept outside the database (core.integrity).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import models, transaction
from django.http import HttpRequest
from django.utils import timezone

from core.integrity import ChainReport, chain_verify
from core.models import AuditChainHead, AuditEvent
from core.queue import enqueue_on_commit

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Who did it: a signed-in user, or None for the system.
Actor: TypeAlias = "User | None"

GENESIS = "0" * 64


def _actor_label(actor: Actor) -> str:
    if actor is None:
        return "system"
    return actor.username


@transaction.atomic
def audit_record(
    *,
    action: str,
    actor: "Actor | AnonymousUser" = None,
    obj: models.Model | None = None,
    model_name: str = "",
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
    if isinstance(actor, AnonymousUser):  # an anonymous visitor is recorded as the system
        actor = None
    event = AuditEvent(
        created_at=timezone.now(),
        actor=actor,
        actor_ref=actor.pk if actor is not None else None,
        actor_label=_actor_label(actor),
        action=action,
        object_type=type(obj).__name__ if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        model_name=model_name,
        payload=payload or {},
        prev_hash=head.last_hash,
    )
    event.row_hash = event.compute_hash()
    event.save()
    head.last_hash = event.row_hash
    head.count += 1
    head.save(update_fields=["last_hash", "count"])
    every = settings.AUDIT_CHECKPOINT_EVERY
    if every > 0 and head.count % every == 0:
        enqueue_on_commit("core.tasks.audit_checkpoint")
    return event


@dataclass(frozen=True)
class Entry:
    """One event of a batch appended by `audit_record_many`."""

    action: str
    object_type: str = ""
    object_id: str = ""
    model_name: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


@transaction.atomic
def audit_record_many(*, entries: Sequence[Entry], actor: "Actor | AnonymousUser" = None) -> int:
    """Append ``entries`` in order, by one actor, with a constant number of queries: the
    chain head is locked once, the hashes are chained here and the rows inserted in bulk.
    Each entry is its own event, exactly as `audit_record` would have written it."""
    if not entries:
        return 0
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
    if isinstance(actor, AnonymousUser):
        actor = None
    now, prev, events = timezone.now(), head.last_hash, []
    for entry in entries:
        event = AuditEvent(
            created_at=now,
            actor=actor,
            actor_ref=actor.pk if actor is not None else None,
            actor_label=_actor_label(actor),
            action=entry.action,
            object_type=entry.object_type,
            object_id=entry.object_id,
            model_name=entry.model_name,
            payload=entry.payload,
            prev_hash=prev,
        )
        event.row_hash = prev = event.compute_hash()
        events.append(event)
    AuditEvent.objects.bulk_create(events, batch_size=500)
    before = head.count
    head.last_hash, head.count = prev, head.count + len(events)
    head.save(update_fields=["last_hash", "count"])
    every = settings.AUDIT_CHECKPOINT_EVERY
    if every > 0 and head.count // every > before // every:
        enqueue_on_commit("core.tasks.audit_checkpoint")
    return len(events)


def audit_permission_denied(request: HttpRequest, perms: Iterable[str]) -> None:
    """Record a refused page or API call (outside any failing transaction)."""
    audit_record(
        action="permission.denied",
        actor=getattr(request, "user", None),
        payload={"path": request.path, "method": request.method, "required": list(perms)},
    )


def audit_verify(*, full: bool = True, checkpoints: Sequence[Path] = ()) -> ChainReport:
    """Verify the chain, whole or (``full=False``) from the newest checkpoint, against
    the checkpoints in the files ``checkpoints``, the local file sink and the database's
    copies; the report names the first event that does not verify."""
    return chain_verify(full=full, files=checkpoints)
