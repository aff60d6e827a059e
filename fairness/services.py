"""Fairness audit services: create an audit, run it on a version's data, store the result."""

import io

import numpy as np
from django.db import transaction
from django.utils import timezone

from fairness import metrics_core
from fairness.models import FairnessAudit
from registry.artifacts import artifact_get
from registry.audit import audit_record
from registry.models import MLModelVersion


class AuditInputError(Exception):
    pass


@transaction.atomic
def fairness_audit_create(
    *,
    version: MLModelVersion,
    source: str = FairnessAudit.Source.EVALUATION,
    attributes=("geo_region",),
    trigger: str = "manual",
    requested_by=None,
) -> FairnessAudit:
    """Create a pending audit and enqueue it for a worker once the transaction commits."""
    if source == FairnessAudit.Source.EVALUATION and not version.evaluation_hash:
        raise AuditInputError(f"{version} was registered without an evaluation set")
    audit = FairnessAudit.objects.create(
        version=version,
        source=source,
        attributes=list(attributes),
        trigger=trigger,
        requested_by=requested_by,
    )
    audit_record(
        action="fairness.audit_requested",
        actor=requested_by,
        obj=audit,
        model_name=version.model.name,
        payload={"version": version.version, "source": source, "trigger": trigger},
    )
    from fairness.tasks import fairness_audit_execute

    transaction.on_commit(lambda: fairness_audit_execute.delay(audit.pk))
    return audit


def _evaluation_data(version: MLModelVersion, attributes: list[str]):
    import xgboost as xgb

    from registry.services import version_load_booster

    relpath = f"{version.evaluation_hash[:2]}/{version.evaluation_hash}.npz"
    raw = artifact_get(sha=version.evaluation_hash, relpath=relpath)
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    missing = [a for a in attributes if a not in arrays]
    if "y" not in arrays or missing:
        raise AuditInputError(f"the evaluation set lacks labels or attributes {missing}")
    booster = version_load_booster(version=version)
    scores = booster.predict(xgb.DMatrix(arrays["X"], feature_names=booster.feature_names))
    return arrays["y"], scores, {a: arrays[a] for a in attributes}


def fairness_audit_execute_now(*, audit_id: int, progress=None) -> FairnessAudit | None:
    """Run a pending audit once (claimed by a conditional update); completed audits are final."""
    claimed = FairnessAudit.objects.filter(
        pk=audit_id, status__in=[FairnessAudit.Status.PENDING, FairnessAudit.Status.RUNNING]
    ).update(status=FairnessAudit.Status.RUNNING)
    if not claimed:
        return None
    audit = FairnessAudit.objects.select_related("version__model").get(pk=audit_id)
    version = audit.version
    try:
        if audit.source != FairnessAudit.Source.EVALUATION:
            raise AuditInputError("audits on logged predictions arrive with the prediction log")
        y, scores, sensitive = _evaluation_data(version, audit.attributes)
        result = metrics_core.audit(
            y,
            scores=scores,
            threshold=version.decision_threshold,
            sensitive=sensitive,
            progress=progress,
        ).to_dict()
    except Exception as exc:
        FairnessAudit.objects.filter(pk=audit_id).update(
            status=FairnessAudit.Status.FAILED,
            reasons=[{"code": "error", "message": str(exc)}],
            completed_at=timezone.now(),
        )
        raise
    with transaction.atomic():
        FairnessAudit.objects.filter(pk=audit_id).update(
            status=FairnessAudit.Status.COMPLETE,
            verdict=result["verdict"],
            reasons=result["reasons"],
            result=result,
            progress=1.0,
            completed_at=timezone.now(),
        )
        audit_record(
            action="fairness.audit_completed",
            obj=audit,
            model_name=version.model.name,
            payload={"version": version.version, "verdict": result["verdict"]},
        )
    audit.refresh_from_db()
    return audit
