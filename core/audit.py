"""The append-only, hash-chained audit trail.

Each event stores SHA-256 over its canonical JSON content, which includes the
previous event's hash. Appends lock the single AuditChainHead row, so concurrent
writers are serialised and the chain never forks. `audit_verify` walks the chain
and reports the first event whose stored hash or link does not match.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from core.models import AuditChainHead, AuditEvent

GENESIS = "0" * 64


def _actor_label(actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "username", str(actor))


@transaction.atomic
def audit_record(
    *,
    action: str,
    actor=None,
    obj=None,
    model_name: str = "",
    payload: dict | None = None,
) -> AuditEvent:
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    event = AuditEvent(
        created_at=timezone.now(),
        actor=actor,
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
    return event


def audit_permission_denied(request, perms) -> None:
    """Record a refused page or API call (outside any failing transaction)."""
    audit_record(
        action="permission.denied",
        actor=getattr(request, "user", None),
        payload={"path": request.path, "method": request.method, "required": list(perms)},
    )


@dataclass
class ChainReport:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""


def audit_verify() -> ChainReport:
    """Walk the chain in id order; name the first event that does not verify."""
    expected_prev = GENESIS
    checked = 0
    last_id = None
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if event.prev_hash != expected_prev:
            return ChainReport(
                False,
                checked,
                event.pk,
                "link to the previous event is broken (an earlier event was edited or deleted)",
            )
        if event.compute_hash() != event.row_hash:
            return ChainReport(
                False, checked, event.pk, "content does not match its hash (the event was edited)"
            )
        expected_prev = event.row_hash
        checked += 1
        last_id = event.pk
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and (head.count != checked or head.last_hash != expected_prev):
        return ChainReport(
            False,
            checked,
            last_id,
            "the newest events were deleted "
            f"(chain head records {head.count} events, found {checked})",
        )
    return ChainReport(True, checked)
