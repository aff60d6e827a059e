"""A model's approval policy: what decides whether a version may pass, and how it changes.

The policy is part of the evidence an approval is bound to (`registry.evidence`): a
change expires the pending requests and the approvals not yet promoted, which must then
be requested again. Strengthening a policy takes effect at once. Weakening it takes two
approvers: one proposes (`policy_change_propose`), a different one confirms
(`policy_change_confirm`). Every change is audited with its old and new values.
"""

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import records_failures
from registry.errors import GovernanceError
from registry.models import (
    FLOOR_FIELDS,
    POLICY_FIELDS,
    ApprovalRequest,
    MLModel,
    MLModelVersion,
    PolicyChange,
)
from registry.traffic import traffic_reconcile_locked

# A weakening proposed and left unconfirmed this long is superseded.
PROPOSAL_LIFETIME = timedelta(days=7)


def _weakens(field: str, old, new) -> bool:
    if field == "required_approvals":
        return new < old
    if field == "fairness_gate":
        return bool(old) and not new
    if field == "protected_attributes":
        return bool(set(old) - set(new))
    # a metric floor: removed or lowered
    return old is not None and (new is None or new < old)


def policy_diff(old: dict, new: dict) -> tuple[dict, dict]:
    """(strengthening, weakening) changes, each ``{field: {"old": ..., "new": ...}}``."""
    stronger: dict[str, dict[str, Any]] = {}
    weaker: dict[str, dict[str, Any]] = {}
    for field in POLICY_FIELDS:
        if old[field] != new[field]:
            change = {"old": old[field], "new": new[field]}
            (weaker if _weakens(field, old[field], new[field]) else stronger)[field] = change
    return stronger, weaker


def _validate(new: dict) -> None:
    if not isinstance(new["required_approvals"], int) or new["required_approvals"] < 1:
        raise GovernanceError(
            "required_approvals must be at least 1", {"field": "required_approvals"}
        )
    attrs = new["protected_attributes"]
    if not isinstance(attrs, list) or not all(isinstance(a, str) and a.strip() for a in attrs):
        raise GovernanceError(
            "protected_attributes must be a list of attribute names",
            {"field": "protected_attributes"},
        )
    for field in FLOOR_FIELDS:
        value = new[field]
        if value is not None and not 0 <= value <= 1:
            raise GovernanceError(f"{field} must be between 0 and 1", {"field": field})


def _apply(model: MLModel, changes: dict, actor, *, proposal: PolicyChange | None) -> None:
    for field, change in changes.items():
        value = change["new"]
        setattr(model, field, sorted(value) if field == "protected_attributes" else value)
    model.policy_changed_at = timezone.now()
    model.save(update_fields=[*changes, "policy_changed_at"])
    audit_record(
        action="model.policy_changed",
        actor=actor,
        obj=model,
        model_name=model.name,
        payload={
            "changes": changes,
            "proposal": proposal.pk if proposal else None,
            "proposed_by": proposal.proposed_by.username if proposal else None,
        },
    )
    _expire_approvals(model, actor, sorted(changes))


def _expire_approvals(model: MLModel, actor, fields: list[str]) -> None:
    """Pending requests and approvals not yet promoted were given under the old policy."""
    reason = f"the approval policy changed ({', '.join(fields)})"
    live = ApprovalRequest.objects.select_for_update().filter(
        version__model=model,
        status__in=[ApprovalRequest.Status.PENDING, ApprovalRequest.Status.APPROVED],
    )
    for request in live.exclude(version__status=MLModelVersion.Status.PRODUCTION):
        ApprovalRequest.objects.filter(pk=request.pk).update(
            status=ApprovalRequest.Status.EXPIRED, decided_at=timezone.now()
        )
        MLModelVersion.objects.filter(pk=request.version_id).update(
            approved_at=None, approved_by=None
        )
        audit_record(
            action="approval.expired",
            actor=actor,
            obj=request,
            model_name=model.name,
            payload={"version": request.version.version, "reason": reason},
        )
    # An expired approval takes no live traffic: a challenger leaves the split.
    traffic_reconcile_locked(model_id=model.pk, actor=actor, reason=reason)


@transaction.atomic
def policy_update(*, model: MLModel, new: dict, actor, notes: str = "") -> PolicyChange | None:
    """Apply the strengthening part of ``new`` at once; the weakening part becomes a
    proposal that another approver must confirm (returned; None when nothing weakens)."""
    model = MLModel.objects.select_for_update().get(pk=model.pk)
    merged = {**model.policy(), **{k: v for k, v in new.items() if k in POLICY_FIELDS}}
    _validate(merged)
    merged["protected_attributes"] = sorted(set(merged["protected_attributes"]))
    stronger, weaker = policy_diff(model.policy(), merged)
    if stronger:
        _apply(model, stronger, actor, proposal=None)
    if not weaker:
        return None
    proposal = PolicyChange.objects.create(
        model=model, changes=weaker, notes=notes, proposed_by=actor
    )
    audit_record(
        action="model.policy_change_proposed",
        actor=actor,
        obj=proposal,
        model_name=model.name,
        payload={"changes": weaker, "notes": notes},
    )
    return proposal


def _decidable(proposal: PolicyChange, actor) -> PolicyChange:
    proposal = PolicyChange.objects.select_for_update().get(pk=proposal.pk)
    if proposal.status != PolicyChange.Status.PENDING:
        raise GovernanceError(f"{proposal} is already {proposal.status}", status=409)
    if actor.pk == proposal.proposed_by_id:
        raise GovernanceError(
            "separation of duties: a weakening of the policy is confirmed by another approver",
            status=403,
            audit={
                "action": "model.policy_self_confirm_refused",
                "actor": actor,
                "obj": proposal,
                "model_name": proposal.model.name,
            },
        )
    return proposal


@records_failures
@transaction.atomic
def policy_change_confirm(*, proposal: PolicyChange, actor) -> PolicyChange:
    proposal = _decidable(proposal, actor)
    model = MLModel.objects.select_for_update().get(pk=proposal.model_id)
    current = model.policy()
    stale = [f for f, change in proposal.changes.items() if current[f] != change["old"]]
    if model.policy_changed_at and model.policy_changed_at > proposal.proposed_at:
        stale = stale or ["the policy changed after it was proposed"]
    if timezone.now() - proposal.proposed_at > PROPOSAL_LIFETIME:
        stale = stale or [f"older than {PROPOSAL_LIFETIME.days} days"]
    if stale:

        def supersede():
            PolicyChange.objects.filter(pk=proposal.pk).update(
                status=PolicyChange.Status.SUPERSEDED, decided_at=timezone.now()
            )

        raise GovernanceError(
            f"the policy changed since {proposal} was proposed ({', '.join(stale)}); "
            "propose it again",
            status=409,
            persist=supersede,
        )
    _apply(model, proposal.changes, actor, proposal=proposal)
    proposal.status = PolicyChange.Status.APPLIED
    proposal.decided_by, proposal.decided_at = actor, timezone.now()
    proposal.save(update_fields=["status", "decided_by", "decided_at"])
    return proposal


@records_failures
@transaction.atomic
def policy_change_reject(*, proposal: PolicyChange, actor, notes: str = "") -> PolicyChange:
    proposal = PolicyChange.objects.select_for_update().get(pk=proposal.pk)
    if proposal.status != PolicyChange.Status.PENDING:
        raise GovernanceError(f"{proposal} is already {proposal.status}", status=409)
    proposal.status = PolicyChange.Status.REJECTED
    proposal.decided_by, proposal.decided_at = actor, timezone.now()
    proposal.save(update_fields=["status", "decided_by", "decided_at"])
    audit_record(
        action="model.policy_change_rejected",
        actor=actor,
        obj=proposal,
        model_name=proposal.model.name,
        payload={"changes": proposal.changes, "notes": notes},
    )
    return proposal
