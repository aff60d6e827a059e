"""A/B traffic services: set the split and shadows, keep them consistent with the
lifecycle, publish the config, and preview how many entities a change moves.

Every write locks the model row first (the same lock the lifecycle services take),
so a split change never interleaves with a promotion, a rollback or another split
change; the TrafficSplit row's CheckConstraint keeps champion + challenger at
100 % even for a writer that forgot the lock.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.audit import Actor, audit_record
from core.errors import records_failures
from registry import extensions
from registry.errors import GovernanceError
from registry.evidence import policy_checks
from registry.models import (
    BASIS_POINTS,
    Experiment,
    ExperimentEvent,
    MLModel,
    MLModelVersion,
    ShadowDeployment,
    TrafficSplit,
)
from registry.routing import bucket_int, challenger_threshold

Status = MLModelVersion.Status
OPEN = (Experiment.Status.PLANNED, Experiment.Status.RUNNING)


@dataclass(frozen=True)
class ExperimentPlan:
    hypothesis: str = ""
    primary_metric: str = Experiment.Metric.PRECISION
    minimum_sample_size: int = 400
    alpha: float = 0.05


def _split_for_update(model: MLModel) -> TrafficSplit:
    split, _ = TrafficSplit.objects.get_or_create(
        model=model,
        defaults={"champion": model.versions.filter(status=Status.PRODUCTION).first()},
    )
    return TrafficSplit.objects.select_for_update().get(pk=split.pk)


def _snapshot(split: TrafficSplit) -> dict[str, Any]:
    champion, challenger = split.champion, split.challenger
    return {
        "champion": champion.version if champion is not None else None,
        "challenger": challenger.version if challenger is not None else None,
        "champion_percentage": split.champion_bp / 100,
        "challenger_percentage": split.challenger_bp / 100,
        "shadows": sorted(v.version for v in split.shadows.all()),
        "revision": split.revision,
    }


def _mirror(split: TrafficSplit) -> None:
    """Keep MLModelVersion.traffic_percentage equal to the split."""
    shares: dict[int, float] = {}
    if split.champion_id:
        shares[split.champion_id] = split.champion_bp / 100
    if split.challenger_id:
        shares[split.challenger_id] = split.challenger_bp / 100
    versions = MLModelVersion.objects.filter(model_id=split.model_id)
    versions.exclude(pk__in=list(shares)).exclude(traffic_percentage=0).update(traffic_percentage=0)
    for pk, share in shares.items():
        versions.filter(pk=pk).update(traffic_percentage=share)


def _event(experiment: Experiment, action: str, actor: Actor, **details: Any) -> None:
    ExperimentEvent.objects.create(
        experiment=experiment, action=action, actor=actor, details=details
    )
    audit_record(
        action=f"experiment.{action}",
        actor=actor,
        obj=experiment,
        model_name=experiment.model.name,
        payload={"challenger": experiment.challenger.version, **details},
    )


def experiment_end(*, experiment: Experiment, status: str, reason: str, actor: Actor) -> None:
    """Close an open experiment (caller holds the model lock)."""
    experiment.status = status
    experiment.ended_at = timezone.now()
    experiment.end_reason = reason
    experiment.save(update_fields=["status", "ended_at", "end_reason"])
    _event(experiment, status, actor, reason=reason)


def _check_challenger(
    model: MLModel,
    champion: MLModelVersion,
    challenger: MLModelVersion | None,
    challenger_bp: int,
) -> None:
    if not 0 <= challenger_bp <= BASIS_POINTS:
        raise GovernanceError(
            "challenger_percentage must be between 0 and 100",
            {"field": "challenger_percentage"},
        )
    if challenger is None:
        if challenger_bp:
            raise GovernanceError(
                "a challenger share needs a challenger version", {"field": "challenger"}
            )
        return
    if challenger.model_id != model.pk or challenger.pk == champion.pk:
        raise GovernanceError(
            "the challenger must be another version of this model", {"field": "challenger"}
        )
    if not challenger.is_approved() or challenger.status != Status.STAGING:
        raise GovernanceError(
            f"only approved staging versions take live traffic ({challenger.version} is "
            f"{challenger.status}, {'approved' if challenger.is_approved() else 'not approved'})",
            {"field": "challenger", "version": challenger.version},
            status=409,
        )
    failures = [c for c in policy_checks(challenger) if not c["passed"]]
    if failures:  # re-read live: an audit can fail after the approval
        raise GovernanceError(
            f"{challenger.version} does not meet the model's approval policy now",
            {"field": "challenger", "version": challenger.version, "failed_checks": failures},
            status=409,
        )
    if not challenger_bp:
        raise GovernanceError(
            "a challenger needs a share above 0 %; remove it to end its experiment",
            {"field": "challenger_percentage"},
        )


def _check_shadows(
    model: MLModel,
    champion: MLModelVersion,
    challenger: MLModelVersion | None,
    shadows: Sequence[MLModelVersion],
) -> None:
    for i, shadow in enumerate(shadows):
        where = {"field": f"shadows[{i}]", "version": shadow.version}
        if shadow.model_id != model.pk:
            raise GovernanceError("a shadow must be a version of this model", where)
        if shadow.pk in (champion.pk, getattr(challenger, "pk", None)):
            raise GovernanceError("a live version cannot also be a shadow", where)
        if shadow.status != Status.STAGING:
            raise GovernanceError(
                f"shadows must be in staging ({shadow.version} is {shadow.status})",
                where,
                status=409,
            )
    if len({s.pk for s in shadows}) != len(shadows):
        raise GovernanceError("a shadow is listed twice", {"field": "shadows"})


def _sync_shadows(split: TrafficSplit, shadows: Sequence[MLModelVersion], actor: Actor) -> None:
    wanted = {s.pk for s in shadows}
    ShadowDeployment.objects.filter(split=split).exclude(version_id__in=wanted).delete()
    have = set(ShadowDeployment.objects.filter(split=split).values_list("version_id", flat=True))
    for pk in wanted - have:
        ShadowDeployment.objects.create(split=split, version_id=pk, added_by=actor)


def _update_experiment(
    model: MLModel,
    champion: MLModelVersion,
    challenger: MLModelVersion | None,
    challenger_bp: int,
    plan: ExperimentPlan,
    actor: Actor,
) -> None:
    """Start, continue, re-share or end the model's experiment to match the new split."""
    current = Experiment.objects.select_for_update().filter(model=model, status__in=OPEN).first()
    if current is not None and (challenger is None or current.challenger_id != challenger.pk):
        if current.status == Experiment.Status.RUNNING:
            reason = f"replaced by {challenger.version}" if challenger else "challenger removed"
            experiment_end(
                experiment=current, status=Experiment.Status.ENDED, reason=reason, actor=actor
            )
            current = None
        elif challenger is not None:
            experiment_end(
                experiment=current,
                status=Experiment.Status.ENDED,
                reason=f"{challenger.version} went live instead",
                actor=actor,
            )
            current = None
    if challenger is None:
        return
    if current is None:
        current = Experiment.objects.create(
            model=model, challenger=challenger, created_by=actor, **plan.__dict__
        )
    if current.status == Experiment.Status.PLANNED:
        current.status, current.started_at = Experiment.Status.RUNNING, timezone.now()
        current.champion, current.challenger_bp = champion, challenger_bp
        current.save(update_fields=["status", "started_at", "champion", "challenger_bp"])
        _event(current, "started", actor, challenger_percentage=challenger_bp / 100)
    elif current.challenger_bp != challenger_bp:
        before = current.challenger_bp
        current.challenger_bp = challenger_bp
        current.save(update_fields=["challenger_bp"])
        _event(
            current,
            "split_changed",
            actor,
            before=before / 100,
            challenger_percentage=challenger_bp / 100,
        )


@records_failures
@transaction.atomic
def traffic_set(
    *,
    model: MLModel,
    challenger: MLModelVersion | None,
    challenger_bp: int,
    shadows: list[MLModelVersion],
    actor: Actor,
    notes: str = "",
    plan: ExperimentPlan | None = None,
    expected_revision: int | None = None,
) -> TrafficSplit:
    """Set the champion/challenger split and the shadows of a model (Approver action)."""
    model = MLModel.objects.select_for_update().get(pk=model.pk)
    champion = model.versions.filter(status=Status.PRODUCTION).first()
    if champion is None:
        raise GovernanceError(f"{model} has no production version to split with", status=409)
    split = _split_for_update(model)
    if expected_revision is not None and expected_revision != split.revision:
        raise GovernanceError(
            "the traffic configuration changed since you read it; reload and try again",
            {"revision": split.revision},
            status=412,
        )
    _check_challenger(model, champion, challenger, challenger_bp)
    _check_shadows(model, champion, challenger, shadows)
    before = _snapshot(split)
    _update_experiment(model, champion, challenger, challenger_bp, plan or ExperimentPlan(), actor)
    split.champion, split.challenger = champion, challenger
    split.champion_bp, split.challenger_bp = BASIS_POINTS - challenger_bp, challenger_bp
    split.revision += 1
    split.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    split.save()
    _sync_shadows(split, shadows, split.updated_by)
    _mirror(split)
    audit_record(
        action="traffic.changed",
        actor=actor,
        obj=split,
        model_name=model.name,
        payload={"before": before, "after": _snapshot(split), "notes": notes},
    )
    return split


@records_failures
@transaction.atomic
def experiment_plan(
    *, model: MLModel, challenger: MLModelVersion, plan: ExperimentPlan, actor: Actor
) -> Experiment:
    """Record a planned experiment for a candidate that is not live yet (it starts when
    an approver gives the challenger traffic)."""
    model = MLModel.objects.select_for_update().get(pk=model.pk)
    if challenger.model_id != model.pk or challenger.status not in (Status.TESTING, Status.STAGING):
        raise GovernanceError(
            "a planned challenger must be a testing or staging version of this model",
            {"field": "challenger"},
        )
    current = Experiment.objects.filter(model=model, status__in=OPEN).first()
    if current is not None:
        if current.challenger_id == challenger.pk:
            return current
        raise GovernanceError(f"{model} already has an open experiment (#{current.pk})", status=409)
    experiment = Experiment.objects.create(
        model=model, challenger=challenger, created_by=actor, **plan.__dict__
    )
    _event(experiment, "planned", actor, hypothesis=plan.hypothesis)
    return experiment


def traffic_reconcile_locked(*, model_id: int, actor: Actor, reason: str) -> None:
    """After a lifecycle change (caller holds the model lock): the champion is the
    production version, a challenger that is no longer an approved staging version
    leaves the split (ending its experiment), shadows that left staging are removed."""
    production = MLModelVersion.objects.filter(model_id=model_id, status=Status.PRODUCTION).first()
    production_pk = production.pk if production else None
    for experiment in Experiment.objects.select_for_update().filter(
        model_id=model_id, status__in=OPEN
    ):
        challenger = MLModelVersion.objects.get(pk=experiment.challenger_id)
        if challenger.status not in (Status.TESTING, Status.STAGING):
            why = f"{challenger.version} is now {challenger.status}"
        elif experiment.champion_id not in (None, production_pk):
            why = "the champion changed"
        else:
            continue
        experiment_end(
            experiment=experiment,
            status=Experiment.Status.ENDED,
            reason=f"{why} ({reason})",
            actor=actor,
        )
    split = TrafficSplit.objects.select_for_update().filter(model_id=model_id).first()
    if split is None:
        return
    before = _snapshot(split)
    live = split.challenger
    if live is not None and (
        live.status != Status.STAGING
        or not live.is_approved()
        or split.champion_id != production_pk
    ):
        split.challenger, split.challenger_bp = None, 0
    split.champion = production
    split.champion_bp = BASIS_POINTS - split.challenger_bp
    ShadowDeployment.objects.filter(split=split).exclude(version__status=Status.STAGING).delete()
    if _snapshot(split) != before:
        split.revision += 1
        split.save()
        audit_record(
            action="traffic.reconciled",
            actor=actor,
            obj=split,
            model_name=split.model.name,
            payload={"before": before, "after": _snapshot(split), "reason": reason},
        )
    _mirror(split)


def _entry(version: MLModelVersion | None, share_bp: int) -> dict[str, Any] | None:
    return None if version is None else _version_entry(version, share_bp)


def _version_entry(version: MLModelVersion, share_bp: int) -> dict[str, Any]:
    return {
        "id": version.pk,
        "version": version.version,
        "status": version.status,
        "share_bp": share_bp,
        "percentage": share_bp / 100,
    }


def traffic_config(*, model: MLModel) -> tuple[dict[str, Any], str]:
    """The published routing config of a model and its ETag."""
    split = (
        TrafficSplit.objects.select_related("champion", "challenger")
        .filter(model_id=model.pk)
        .first()
    )
    champion: MLModelVersion | None
    challenger: MLModelVersion | None
    shadows: list[MLModelVersion]
    if split is None or split.champion is None:
        champion, challenger, shadows, revision = model.production_version(), None, [], 0
        champion_bp, challenger_bp = BASIS_POINTS, 0
        if split is not None:
            revision = split.revision
    else:
        champion, challenger = split.champion, split.challenger
        champion_bp, challenger_bp = split.champion_bp, split.challenger_bp
        shadows = list(split.shadows.order_by("pk"))
        revision = split.revision
    config = {
        "model": model.name,
        "revision": revision,
        "salt": model.experiment_salt,
        "assignment": "bucket = int(sha256(salt + ':' + entity)[:8], big-endian) / 2**64; "
        "challenger when bucket * 10000 < challenger.share_bp",
        "champion": _entry(champion, champion_bp),
        "challenger": _entry(challenger, challenger_bp),
        "shadows": [_version_entry(s, 0) for s in shadows],  # no share: percentage 0.0
    }
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return config, '"' + hashlib.sha256(canonical.encode()).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class MovePreview:
    days: int
    entities: int
    into_challenger: int
    out_of_challenger: int
    switched_challenger: int

    @property
    def moved(self) -> int:
        return self.into_challenger + self.out_of_challenger + self.switched_challenger


def traffic_preview(
    *,
    model: MLModel,
    challenger: MLModelVersion | None,
    challenger_bp: int,
    days: int | None = None,
) -> MovePreview:
    """How many entities seen in the log over the last `days` days would change version."""
    days = days or settings.AB_PREVIEW_DAYS
    split = TrafficSplit.objects.filter(model_id=model.pk).first()
    old_challenger = split.challenger_id if split else None
    old_t = challenger_threshold(split.challenger_bp if split else 0)
    new_t = challenger_threshold(challenger_bp if challenger else 0)
    new_challenger = challenger.pk if challenger else None
    entities = extensions.recent_entities(model, timezone.now() - timedelta(days=days))
    into = out = switched = total = 0
    for entity in entities:
        total += 1
        h = bucket_int(model.experiment_salt, entity)
        was, now = h < old_t, h < new_t
        if now and not was:
            into += 1
        elif was and not now:
            out += 1
        elif was and now and old_challenger != new_challenger:
            switched += 1
    return MovePreview(days, total, into, out, switched)
