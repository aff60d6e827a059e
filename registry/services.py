"""Registry write services: registration, lifecycle transitions, approvals, rollback.

Every service is atomic, takes keyword-only arguments, enforces its invariants
against the database (constraints, row locks) and leaves an audit event.
"""

import io
import zipfile
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import xgboost as xgb
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import Actor, audit_record
from core.errors import records_failures
from core.notifications import notification_queue
from core.roles import APPROVER, ML_ENGINEER
from registry import extensions
from registry.artifacts import ArtifactIntegrityError, artifact_put, booster_cache
from registry.errors import GovernanceError as GovernanceError  # callers catch it from here
from registry.evidence import evidence_hash, evidence_snapshot, policy_checks
from registry.models import (
    ApprovalDecision,
    ApprovalRequest,
    MLModel,
    MLModelVersion,
    validate_semver,
)
from registry.traffic import traffic_reconcile_locked
from registry.training import ArtifactFormatError, artifact_format, binary_metrics, load_booster

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Status = MLModelVersion.Status


# Allowed lifecycle moves. version_transition enters production only through the
# approval gate (_promote_locked); version_rollback is the other way in and out.
TRANSITIONS: dict[str, set[str]] = {
    Status.TRAINING: {Status.TESTING, Status.ARCHIVED},
    Status.TESTING: {Status.STAGING, Status.ARCHIVED},
    Status.STAGING: {Status.TESTING, Status.PRODUCTION, Status.ARCHIVED},
    Status.PRODUCTION: {Status.ARCHIVED},
    Status.ARCHIVED: set(),
}

ARTIFACT_SUFFIX = {"json": ".json", "ubj": ".ubj"}


def version_load_booster(*, version: MLModelVersion, actor: Actor = None) -> xgb.Booster:
    """The verified booster of a version; a hash mismatch is audited and re-raised."""
    try:
        return booster_cache.get(version.model_hash, version.model_path)
    except ArtifactIntegrityError as exc:
        # The audit event must survive the caller's rollback: record it on commit
        # of its own transaction (we are usually outside one here).
        audit_record(
            action="artifact.verification_failed",
            actor=actor,
            obj=version,
            model_name=version.model.name,
            payload={"expected": exc.expected, "actual": exc.actual, "path": version.model_path},
        )
        raise


def _validate_schema(schema: object) -> list[dict[str, Any]]:
    if not isinstance(schema, list) or not schema:
        raise GovernanceError(
            "feature_schema is required: an ordered list of {name, type}",
            {"field": "feature_schema"},
        )
    names: set[str] = set()
    for i, feature in enumerate(schema):
        if not isinstance(feature, dict) or not isinstance(feature.get("name"), str):
            raise GovernanceError("each feature needs a name", {"field": f"feature_schema[{i}]"})
        if feature.get("type") not in ("numeric", "categorical"):
            raise GovernanceError(
                "feature type must be numeric or categorical",
                {"field": f"feature_schema[{i}].type"},
            )
        if feature["name"] in names:
            raise GovernanceError(
                f"duplicate feature {feature['name']!r}", {"field": f"feature_schema[{i}]"}
            )
        names.add(feature["name"])
    return schema


# An .npz may expand to at most this multiple of its size plus the floor: a zero-filled
# array compresses a thousandfold, and loading it would take the worker's memory.
EVALUATION_MAX_EXPANSION = 8
EVALUATION_EXPANSION_FLOOR = 64 * 1024 * 1024


def _npy_header(member: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    return shape, dtype


def _check_evaluation_sizes(data: bytes) -> None:
    """Refuse an .npz whose arrays would expand past the bound, from the zip member
    headers and the .npy headers alone, before anything is decompressed in bulk."""
    limit = EVALUATION_MAX_EXPANSION * len(data) + EVALUATION_EXPANSION_FLOOR
    refuse = GovernanceError(
        f"evaluation arrays would take more than {limit} bytes once decompressed "
        f"({EVALUATION_MAX_EXPANSION}x the upload plus {EVALUATION_EXPANSION_FLOOR >> 20} MiB)",
        {"field": "evaluation"},
    )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if sum(m.file_size for m in members) > limit:
                raise refuse
            declared = 0
            for info in members:
                with archive.open(info) as member:
                    shape, dtype = _npy_header(member)
                declared += int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared > limit:
                    raise refuse
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise GovernanceError(
            f"evaluation must be a NumPy .npz without pickled objects ({exc})",
            {"field": "evaluation"},
        ) from None


def _load_evaluation(data: bytes, n_features: int) -> dict[str, np.ndarray]:
    """Held-out evaluation set: an .npz (no pickles) with X, optional y and group attributes."""
    _check_evaluation_sizes(data)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise GovernanceError(
            f"evaluation must be a NumPy .npz without pickled objects ({exc})",
            {"field": "evaluation"},
        ) from None
    X = arrays.get("X")
    if X is None or X.ndim != 2 or X.shape[1] != n_features or len(X) == 0:
        raise GovernanceError(
            f"evaluation X must be a non-empty 2-D array with {n_features} columns",
            {"field": "evaluation"},
        )
    if not np.isfinite(X.astype(float)).all():
        raise GovernanceError(
            "evaluation X contains NaN or infinite values", {"field": "evaluation"}
        )
    y = arrays.get("y")
    if y is not None and (len(y) != len(X) or not np.isin(y, (0, 1)).all()):
        raise GovernanceError(
            "evaluation y must be 0/1 with one label per row", {"field": "evaluation"}
        )
    return arrays


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _evaluation_float32_check(X: np.ndarray, schema: list[dict[str, Any]]) -> None:
    """Every value within float32 range: XGBoost scores float32, so 1e300 (finite in
    float64) would reach the model as inf. Names the first failing row and feature."""
    with np.errstate(invalid="ignore"):
        bad = np.abs(X.astype(np.float64)) > FLOAT32_MAX
    if bad.any():
        row, column = (int(k[0]) for k in np.nonzero(bad))
        raise GovernanceError(
            f"evaluation X row {row}, feature {schema[column]['name']}: must be within "
            f"float32 range (|x| <= {FLOAT32_MAX:.8g})",
            {"field": "evaluation", "row": row, "feature": schema[column]["name"]},
        )


def _evaluate(
    booster: xgb.Booster, arrays: dict[str, np.ndarray], threshold: float
) -> tuple[np.ndarray, dict[str, float]]:
    matrix = xgb.DMatrix(arrays["X"].astype(np.float64), feature_names=booster.feature_names)
    scores = booster.predict(matrix)
    metrics: dict[str, float] = {}
    if "y" in arrays:
        computed = binary_metrics(arrays["y"].astype(int), scores, threshold)
        metrics = {
            "accuracy": computed["accuracy"],
            "precision": computed["precision"],
            "recall": computed["recall"],
            "f1_score": computed["f1"],
            "auc": computed["auc"],
        }
    return scores, metrics


METADATA_FIELDS = {
    "training_dataset_hash",
    "training_samples",
    "training_duration_seconds",
    "hyperparameters",
    "accuracy",
    "precision",
    "recall",
    "f1_score",
    "auc",
    "decision_threshold",
    "intended_use",
    "limitations",
    "ethical_considerations",
    "evaluation_data",
}


def model_version_register(
    *,
    model_name: str,
    version: str,
    artifact: bytes,
    metadata: dict[str, Any],
    evaluation: bytes | None,
    registered_by: "User | None",
    description: str = "",
) -> MLModelVersion:
    """Validate and store a trained version; metrics come from its evaluation set when given."""
    validate_semver_or_raise(version)
    unknown = set(metadata) - METADATA_FIELDS - {"feature_schema", "parent"}
    if unknown:
        raise GovernanceError(
            f"unknown metadata fields: {', '.join(sorted(unknown))}", {"field": "metadata"}
        )
    schema = _validate_schema(metadata.get("feature_schema"))
    try:
        booster = load_booster(artifact)
    except ArtifactFormatError as exc:
        raise GovernanceError(str(exc), {"field": "artifact", **exc.details}) from None
    if booster.num_features() != len(schema):
        raise GovernanceError(
            f"the booster expects {booster.num_features()} features, "
            f"the schema lists {len(schema)}",
            {"field": "feature_schema"},
        )
    names = [f["name"] for f in schema]
    if not booster.feature_names:
        # Without names nothing proves the schema's column order is the training order,
        # and a permuted order scores and explains silently wrong.
        raise GovernanceError(
            "the booster has no feature names, so the schema's order cannot be verified; "
            "set booster.feature_names = [...] (in training order) before saving it",
            {"field": "artifact", "schema": names},
        )
    if list(booster.feature_names) != names:
        raise GovernanceError(
            "the schema's feature names or order differ from the booster's",
            {"field": "feature_schema", "booster": list(booster.feature_names)},
        )
    threshold = float(metadata.get("decision_threshold", 0.5))
    if not 0 < threshold < 1:
        raise GovernanceError(
            "decision_threshold must be in (0, 1)", {"field": "decision_threshold"}
        )
    # Refused before any file is stored: the store is outside the transaction.
    _check_new_version(model_name, version, metadata.get("parent"))
    fields = {k: metadata[k] for k in METADATA_FIELDS if k in metadata}
    reference_hash, evaluation_hash, evaluation_rows = "", "", None
    reference_summary: dict[str, Any] = {}
    if evaluation is not None:
        arrays = _load_evaluation(evaluation, len(schema))
        _evaluation_float32_check(arrays["X"], schema)
        scores, metrics = _evaluate(booster, arrays, threshold)
        if metrics:  # a labelled set: the registry's own figures replace any typed in
            fields.update(metrics, metrics_source=MLModelVersion.MetricsSource.EVALUATION)
        profile = extensions.reference_build(schema, arrays, scores)
        reference_hash, _ = artifact_put(data=profile.to_bytes(), suffix=".npz")
        reference_summary = profile.summary()
        evaluation_hash, _ = artifact_put(data=evaluation, suffix=".npz")
        evaluation_rows = int(len(arrays["X"]))
    fmt = artifact_format(artifact)
    sha, relpath = artifact_put(data=artifact, suffix=ARTIFACT_SUFFIX[fmt])
    return _version_create(
        model_name=model_name,
        version=version,
        schema=schema,
        fields=fields,
        sha=sha,
        relpath=relpath,
        fmt=fmt,
        reference=(reference_hash, reference_summary),
        evaluation=(evaluation_hash, evaluation_rows),
        parent=metadata.get("parent"),
        registered_by=registered_by,
        description=description,
    )


def _check_new_version(model_name: str, version: str, parent: object) -> None:
    """_version_create's refusals, checked once without locks before files are stored."""
    if parent is not None and not isinstance(parent, str):
        raise GovernanceError("parent must be a version string", {"field": "parent"})
    versions = MLModelVersion.objects.filter(model__name=model_name)
    if versions.filter(version=version).exists():
        raise GovernanceError(
            f"{model_name} {version} is already registered", {"field": "version"}, status=409
        )
    if parent and not versions.filter(version=parent).exists():
        raise GovernanceError(f"parent version {parent} does not exist", {"field": "parent"})


def validate_semver_or_raise(version: str) -> None:
    from django.core.exceptions import ValidationError

    try:
        validate_semver(version)
    except ValidationError as exc:
        raise GovernanceError(exc.messages[0], {"field": "version"}) from None


@transaction.atomic
def _version_create(
    *,
    model_name: str,
    version: str,
    schema: list[dict[str, Any]],
    fields: dict[str, Any],
    sha: str,
    relpath: str,
    fmt: str,
    reference: tuple[str, dict[str, Any]],
    evaluation: tuple[str, int | None],
    parent: str | None,
    registered_by: "User | None",
    description: str,
) -> MLModelVersion:
    model, created = MLModel.objects.get_or_create(
        name=model_name,
        defaults={"description": description, "owner": registered_by, "feature_schema": schema},
    )
    if created:
        audit_record(action="model.created", actor=registered_by, obj=model, model_name=model.name)
    if model.versions.filter(version=version).exists():
        raise GovernanceError(
            f"{model_name} {version} is already registered", {"field": "version"}, status=409
        )
    parent_obj = None
    if parent:
        parent_obj = model.versions.filter(version=parent).first()
        if parent_obj is None:
            raise GovernanceError(f"parent version {parent} does not exist", {"field": "parent"})
    elif (prod := model.production_version()) is not None:
        parent_obj = prod
    try:
        with transaction.atomic():
            obj = MLModelVersion.objects.create(
                model=model,
                version=version,
                feature_schema=schema,
                model_hash=sha,
                model_path=relpath,
                artifact_format=fmt,
                reference_hash=reference[0],
                reference_summary=reference[1],
                evaluation_hash=evaluation[0],
                evaluation_rows=evaluation[1],
                parent=parent_obj,
                registered_by=registered_by,
                **fields,
            )
    except IntegrityError:
        raise GovernanceError(
            f"{model_name} {version} is already registered", {"field": "version"}, status=409
        ) from None
    audit_record(
        action="version.registered",
        actor=registered_by,
        obj=obj,
        model_name=model.name,
        payload={
            "version": version,
            "sha256": sha,
            "metrics": obj.metrics(),
            "parent": parent_obj.version if parent_obj else None,
        },
    )
    return obj


def _lock_version(version: MLModelVersion) -> MLModelVersion:
    # Lock the model row first: every lifecycle change of a model is serialised on it.
    MLModel.objects.select_for_update().get(pk=version.model_id)
    return MLModelVersion.objects.select_for_update().get(pk=version.pk)


@records_failures
@transaction.atomic
def version_transition(
    *, version: MLModelVersion, to: str, actor: Actor, notes: str = ""
) -> MLModelVersion:
    """Move a version along the lifecycle; production goes through the approval gate."""
    version = _lock_version(version)
    if to == version.status:
        return version
    if to not in TRANSITIONS.get(version.status, set()):
        raise GovernanceError(
            f"cannot move {version} from {version.status} to {to}",
            {"field": "to", "allowed": sorted(TRANSITIONS.get(version.status, set()))},
            status=409,
        )
    if to == Status.PRODUCTION:
        return _promote_locked(version=version, actor=actor, notes=notes)
    now = timezone.now()
    previous = version.status
    version.status = to
    update = ["status"]
    if to == Status.ARCHIVED:
        version.deprecated_at = now
        version.traffic_percentage = 0
        update += ["deprecated_at", "traffic_percentage"]
    version.save(update_fields=update)
    audit_record(
        action="version.transition",
        actor=actor,
        obj=version,
        model_name=version.model.name,
        payload={"from": previous, "to": to, "notes": notes},
    )
    _traffic_follow(version.model_id, actor, f"{version.version} moved to {to}")
    return version


def _traffic_follow(model_id: int, actor: Actor, reason: str) -> None:
    # The A/B split follows the lifecycle under the same model lock (registry.traffic).

    traffic_reconcile_locked(model_id=model_id, actor=actor, reason=reason)


def _require_valid_approval(version: MLModelVersion) -> ApprovalRequest:
    approved = version.approval_requests.filter(status=ApprovalRequest.Status.APPROVED).first()
    if approved is None or not version.is_approved():
        raise GovernanceError(
            f"{version} has no approval; promotion to production needs an approved request",
            status=409,
        )
    if approved.evidence_hash != evidence_hash(version):

        def expire() -> None:
            ApprovalRequest.objects.filter(pk=approved.pk).update(
                status=ApprovalRequest.Status.EXPIRED
            )
            MLModelVersion.objects.filter(pk=version.pk).update(approved_at=None, approved_by=None)
            # An unapproved version takes no live traffic (a challenger leaves the split).
            MLModel.objects.select_for_update().get(pk=version.model_id)
            traffic_reconcile_locked(
                model_id=version.model_id, actor=None, reason=f"the approval of {version} expired"
            )

        raise GovernanceError(
            f"the approval of {version} expired: its evidence changed since it was approved",
            status=409,
            persist=expire,
            audit={
                "action": "approval.expired",
                "obj": approved,
                "model_name": version.model.name,
                "payload": {"reason": "the version's evidence changed after approval"},
            },
        )
    return approved


def _policy_failures_refuse(version: MLModelVersion, what: str) -> None:
    """Refuse ``what`` while the version fails a policy check now (the fairness gate and
    the floors are re-read live: an audit can fail after the approval)."""
    failures = [c for c in policy_checks(version) if not c["passed"]]
    if failures:
        raise GovernanceError(
            f"{what} {version} refused: it does not meet the model's approval policy now",
            {"failed_checks": failures},
            status=409,
        )


def _promote_locked(*, version: MLModelVersion, actor: Actor, notes: str) -> MLModelVersion:
    _require_valid_approval(version)
    _policy_failures_refuse(version, "promoting")
    now = timezone.now()
    current = (
        MLModelVersion.objects.select_for_update()
        .filter(model_id=version.model_id, status=Status.PRODUCTION)
        .first()
    )
    if current is not None:
        current.status = Status.ARCHIVED
        current.deprecated_at = now
        current.traffic_percentage = 0
        current.save(update_fields=["status", "deprecated_at", "traffic_percentage"])
    previous = version.status
    version.status = Status.PRODUCTION
    version.deployed_at = now
    version.deprecated_at = None
    version.traffic_percentage = 100
    version.save(update_fields=["status", "deployed_at", "deprecated_at", "traffic_percentage"])
    audit_record(
        action="version.promoted",
        actor=actor,
        obj=version,
        model_name=version.model.name,
        payload={
            "from": previous,
            "replaced": current.version if current else None,
            "notes": notes,
        },
    )
    _traffic_follow(version.model_id, actor, f"{version.version} promoted")
    notification_queue(
        event="version.promoted",
        subject=f"{version} is now in production",
        body=f"{actor} promoted {version}" + (f", replacing {current.version}" if current else ""),
        roles=[APPROVER, ML_ENGINEER],
        payload={"model": version.model.name, "version": version.version},
    )
    return version


@records_failures
@transaction.atomic
def version_rollback(*, model: MLModel, actor: Actor, notes: str = "") -> MLModelVersion:
    """Put the previous production version back in production, archiving the current one."""
    MLModel.objects.select_for_update().get(pk=model.pk)
    current = model.versions.select_for_update().filter(status=Status.PRODUCTION).first()
    if current is None:
        raise GovernanceError(f"{model} has no production version to roll back", status=409)
    previous = (
        model.versions.select_for_update()
        .filter(status=Status.ARCHIVED, deployed_at__isnull=False)
        .exclude(pk=current.pk)
        .order_by("-deprecated_at")
        .first()
    )
    if previous is None:
        raise GovernanceError(f"{model} has no earlier production version", status=409)
    # One approver may roll back, but not to a version today's policy refuses: that
    # version goes through approval again.
    _policy_failures_refuse(previous, "rolling back to")
    now = timezone.now()
    current.status, current.deprecated_at, current.traffic_percentage = Status.ARCHIVED, now, 0
    current.save(update_fields=["status", "deprecated_at", "traffic_percentage"])
    previous.status, previous.deployed_at, previous.deprecated_at = Status.PRODUCTION, now, None
    previous.traffic_percentage = 100
    previous.save(update_fields=["status", "deployed_at", "deprecated_at", "traffic_percentage"])
    audit_record(
        action="version.rolled_back",
        actor=actor,
        obj=previous,
        model_name=model.name,
        payload={"from": current.version, "to": previous.version, "notes": notes},
    )
    _traffic_follow(model.pk, actor, f"rolled back to {previous.version}")
    notification_queue(
        event="version.rolled_back",
        subject=f"{model} rolled back to {previous.version}",
        body=f"{actor} rolled {model} back from {current.version} to {previous.version}. {notes}",
        roles=[APPROVER, ML_ENGINEER],
        payload={"model": model.name, "version": previous.version},
    )
    return previous


@records_failures
@transaction.atomic
def approval_request_create(
    *, version: MLModelVersion, actor: "User", notes: str = ""
) -> ApprovalRequest:
    """Ask approvers to approve a version; snapshots the evidence they will see."""
    version = _lock_version(version)
    if version.status not in (Status.TESTING, Status.STAGING):
        raise GovernanceError(
            f"only testing or staging versions can be submitted (this one is {version.status})",
            status=409,
        )
    if version.approval_requests.filter(status=ApprovalRequest.Status.PENDING).exists():
        raise GovernanceError(f"{version} already has a pending approval request", status=409)
    if version.is_approved():
        raise GovernanceError(f"{version} is already approved", status=409)
    extensions.approval_requested(version, actor)
    evidence = evidence_snapshot(version)
    request = ApprovalRequest.objects.create(
        version=version,
        requested_by=actor,
        notes=notes,
        evidence=evidence,
        evidence_hash=evidence_hash(version),
    )
    audit_record(
        action="approval.requested",
        actor=actor,
        obj=request,
        model_name=version.model.name,
        payload={"version": version.version, "notes": notes, "policy": evidence["policy_checks"]},
    )
    notification_queue(
        event="approval.requested",
        subject=f"Approval requested: {version}",
        body=f"{actor} asks for approval of {version}. {notes}",
        roles=[APPROVER],
        payload={"model": version.model.name, "version": version.version, "request": request.pk},
    )
    return request


def _check_separation_of_duties(request: ApprovalRequest, approver: "User") -> None:
    version = request.version
    if approver.pk in (version.registered_by_id, request.requested_by_id):
        raise GovernanceError(
            "separation of duties: whoever registered or submitted a version cannot decide on it",
            status=403,
            audit={
                "action": "approval.self_approval_refused",
                "actor": approver,
                "obj": request,
                "model_name": version.model.name,
            },
        )


@records_failures
@transaction.atomic
def approval_decide(
    *, request: ApprovalRequest, approver: "User", decision: str, notes: str = ""
) -> ApprovalRequest:
    """Record one approver's decision; the request closes on a reject or enough approvals."""
    request = ApprovalRequest.objects.select_for_update().get(pk=request.pk)
    version = _lock_version(request.version)
    if request.status != ApprovalRequest.Status.PENDING:
        raise GovernanceError(f"this request is already {request.status}", status=409)
    if decision not in ApprovalDecision.Decision.values:
        raise GovernanceError("decision must be approve or reject", {"field": "decision"})
    if decision == ApprovalDecision.Decision.REJECT and not notes.strip():
        raise GovernanceError("a rejection needs notes explaining why", {"field": "notes"})
    _check_separation_of_duties(request, approver)
    if request.decisions.filter(approver=approver).exists():
        raise GovernanceError("you have already decided on this request", status=409)
    if decision == ApprovalDecision.Decision.APPROVE:
        _check_gates(request, version)
    ApprovalDecision.objects.create(
        request=request, approver=approver, decision=decision, notes=notes
    )
    audit_record(
        action=f"approval.{decision}",
        actor=approver,
        obj=request,
        model_name=version.model.name,
        payload={"version": version.version, "notes": notes},
    )
    _close_if_decided(request, version, approver, decision, notes)
    return request


def _check_gates(request: ApprovalRequest, version: MLModelVersion) -> None:
    if request.evidence_hash != evidence_hash(version):
        raise GovernanceError(
            "the evidence changed since the request was made; it has expired, submit again",
            status=409,
            persist=lambda: ApprovalRequest.objects.filter(pk=request.pk).update(
                status=ApprovalRequest.Status.EXPIRED
            ),
            audit={
                "action": "approval.expired",
                "obj": request,
                "model_name": version.model.name,
                "payload": {"reason": "evidence changed while the request was pending"},
            },
        )
    failures = [c for c in evidence_snapshot(version)["policy_checks"] if not c["passed"]]
    if failures:
        raise GovernanceError(
            "the version does not meet the model's approval policy",
            {"failed_checks": failures},
            status=409,
        )


def _close_if_decided(
    request: ApprovalRequest,
    version: MLModelVersion,
    approver: "User",
    decision: str,
    notes: str,
) -> None:
    now = timezone.now()
    if decision == ApprovalDecision.Decision.REJECT:
        request.status, request.decided_at = ApprovalRequest.Status.REJECTED, now
        request.save(update_fields=["status", "decided_at"])
        notification_queue(
            event="approval.rejected",
            subject=f"{version} was rejected",
            body=f"{approver} rejected {version}: {notes}",
            roles=[ML_ENGINEER],
            payload={"model": version.model.name, "version": version.version},
        )
        return
    approvals = request.decisions.filter(decision=ApprovalDecision.Decision.APPROVE).count()
    if approvals < version.model.required_approvals:
        return
    request.status, request.decided_at = ApprovalRequest.Status.APPROVED, now
    request.save(update_fields=["status", "decided_at"])
    version.approved_by, version.approved_at, version.approval_notes = approver, now, notes
    version.save(update_fields=["approved_by", "approved_at", "approval_notes"])
    notification_queue(
        event="approval.approved",
        subject=f"{version} was approved",
        body=f"{approver} approved {version} ({approvals} of "
        f"{version.model.required_approvals} approvals). {notes}",
        roles=[ML_ENGINEER, APPROVER],
        payload={"model": version.model.name, "version": version.version},
    )
