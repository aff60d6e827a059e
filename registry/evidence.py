"""What an approver sees: metrics and deltas vs production, policy checks, fairness, drift.

Fairness and drift sections and the fairness gate's checks come from the apps that own
them, through the slots in `registry.extensions`.

`evidence_hash` covers the candidate's own evidence (artifact, metrics and where
they came from, threshold, schema, model card) and the model's approval policy. If
any of it changes after a request or an approval, the approval expires. Fairness and
drift are re-checked live at decision time instead, since they legitimately change
while a request waits.
"""

import hashlib
import json

from registry.extensions import evidence_section, gate_checks
from registry.models import MLModelVersion

METRICS = ("accuracy", "precision", "recall", "f1_score", "auc")
CARD_FIELDS = ("intended_use", "limitations", "ethical_considerations", "evaluation_data")
FLOORS = {
    "precision": "min_precision",
    "recall": "min_recall",
    "f1_score": "min_f1",
    "auc": "min_auc",
}


def evidence_hash(version: MLModelVersion) -> str:
    content = {
        "artifact": version.model_hash,
        "metrics": version.metrics(),
        "threshold": version.decision_threshold,
        "schema": version.feature_schema,
        "card": {f: getattr(version, f) for f in CARD_FIELDS},
        "metrics_source": version.metrics_source,
        "policy": version.model.policy(),
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def metric_deltas(version: MLModelVersion, production: MLModelVersion | None) -> dict:
    deltas = {}
    for name in METRICS:
        mine = getattr(version, name)
        theirs = getattr(production, name) if production else None
        deltas[name] = {
            "candidate": mine,
            "production": theirs,
            "delta": None if mine is None or theirs is None else mine - theirs,
            "candidate_source": version.metrics_source,
            "production_source": production.metrics_source if production else None,
        }
    return deltas


def policy_checks(version: MLModelVersion) -> list[dict]:
    model = version.model
    checks = []
    for metric, floor_field in FLOORS.items():
        floor = getattr(model, floor_field)
        if floor is None:
            continue
        value = getattr(version, metric)
        shown = "unknown" if value is None else value
        if version.metrics_self_reported:
            # A floor is met only by figures the registry computed from the stored set.
            passed, detail = (
                False,
                f"{metric} {shown} is self-reported (no labelled evaluation set)",
            )
        else:
            passed, detail = value is not None and value >= floor, f"{metric} is {shown}"
        checks.append({"check": f"{metric} >= {floor}", "passed": passed, "detail": detail})
    missing = [f for f in ("intended_use", "limitations") if not getattr(version, f).strip()]
    checks.append(
        {
            "check": "model card complete",
            "passed": not missing,
            "detail": f"missing: {', '.join(missing)}"
            if missing
            else "intended use and limitations given",
        }
    )
    checks.extend(gate_checks(version))
    return checks


def evidence_snapshot(version: MLModelVersion) -> dict:
    production = version.model.production_version()
    if production is not None and production.pk == version.pk:
        production = None
    return {
        "version": {
            "model": version.model.name,
            "version": version.version,
            "status": version.status,
            "artifact_sha256": version.model_hash,
            "threshold": version.decision_threshold,
            "registered_by": version.registered_by.username if version.registered_by else None,
            "training_samples": version.training_samples,
            "evaluation_rows": version.evaluation_rows,
        },
        "production_version": production.version if production else None,
        "metrics_source": version.metrics_source,
        "metrics": metric_deltas(version, production),
        "policy": version.model.policy(),
        "model_card": {f: getattr(version, f) for f in CARD_FIELDS},
        "policy_checks": policy_checks(version),
        "fairness": evidence_section("fairness", version),
        "drift": {
            "candidate": evidence_section("drift", version),
            "production": evidence_section("drift", production),
        },
    }
