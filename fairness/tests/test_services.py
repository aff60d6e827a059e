import numpy as np
import pytest

from core.models import AuditEvent
from fairness import metrics_core
from fairness.models import AuditImmutableError, FairnessAudit
from fairness.services import (
    AuditInputError,
    fairness_audit_check_data,
    fairness_audit_create,
    fairness_audit_execute_now,
)
from fairness.tests.conftest import log_traffic, period_of, traffic

pytestmark = pytest.mark.django_db


def run(version, **kw):
    audit = fairness_audit_create(version=version, **kw)
    return fairness_audit_execute_now(audit_id=audit.pk)


def fpr_rule(audit, group):
    return next(g for g in audit.groups if g["name"] == group)["four_fifths"]["fpr"]


def test_a_version_trained_with_the_region_proxy_fails_on_its_evaluation_set(
    register_trained, biased_training
):
    audit = run(register_trained(biased_training))
    assert audit.status == "complete" and audit.verdict == "fail"
    failed = [r for r in audit.reasons if r["severity"] == "fail"]
    assert [(r["group"], r["metric"]) for r in failed] == [("APAC", "fpr")]
    assert fpr_rule(audit, "APAC")["ratio"] < 0.8
    assert audit.progress == 1.0 and audit.completed_at is not None
    assert audit.result["data"] == {
        "source": "evaluation",
        "rows": biased_training.validation_samples,
        "threshold": biased_training.threshold,
    }
    assert AuditEvent.objects.filter(action="fairness.audit_completed").count() == 1


def test_a_version_trained_without_the_proxy_passes(register_trained, fair_training):
    audit = run(register_trained(fair_training))
    assert audit.verdict == "pass"
    assert all(r["severity"] in ("info", "advisory") for r in audit.reasons)


def test_logged_predictions_with_verdicts_give_the_same_verdicts(
    register_trained, biased_training, fair_training
):
    biased = register_trained(biased_training, model="biased")
    fair = register_trained(fair_training, model="fair")
    events = {proxy: traffic(20_000, proxy=proxy) for proxy in (0.25, 0.0)}
    log_traffic(biased, events[0.25])
    log_traffic(fair, events[0.0])
    start, end = period_of(events[0.25])
    kw = dict(source="logged", period_start=start, period_end=end)
    audit = run(biased, **kw)
    assert audit.verdict == "fail" and fpr_rule(audit, "APAC")["status"] == "fail"
    assert audit.result["data"]["rows"] == 20_000
    assert audit.result["weighted"] is False  # every row labelled: nothing to reweight
    assert run(fair, **kw).verdict == "pass"


def test_logged_audits_reweight_by_the_review_rate_and_ignore_shadow_rows(
    register_trained, biased_training, fair_training
):
    version = register_trained(biased_training)
    shadow = register_trained(fair_training, version="1.1.0")
    events = traffic(6000, proxy=0.25)
    flagged = log_traffic(version, events, labelled=np.zeros(len(events), bool), tag="probe")
    from monitoring.models import PredictionLog

    PredictionLog.objects.all().delete()
    # Analysts review 60 % of flagged events and 5 % of the others.
    rng = np.random.default_rng(5)
    reviewed = rng.random(len(events)) < np.where(flagged, 0.6, 0.05)
    log_traffic(version, events, labelled=reviewed)
    log_traffic(shadow, events, role="shadow", tag="shadow")
    start, end = period_of(events)
    audit = run(version, source="logged", period_start=start, period_end=end)
    assert audit.result["data"]["rows"] == int(reviewed.sum())
    assert audit.result["weighted"] is True
    # Horvitz-Thompson by hand: each reviewed row counts served/reviewed of its stratum.
    region, y = events.geo_region, events.y
    for group in audit.groups:
        fp = tn = 0.0
        for decision in (False, True):
            stratum = (region == group["name"]) & (flagged == decision)
            weight = stratum.sum() / (stratum & reviewed).sum()
            benign = stratum & reviewed & (y == 0)
            fp += weight * benign.sum() * decision
            tn += weight * benign.sum() * (not decision)
        assert group["metrics"]["fpr"]["value"] == pytest.approx(fp / (fp + tn), abs=1e-12)
    with pytest.raises(AuditInputError, match="served no predictions"):
        fairness_audit_check_data(
            version=shadow,
            source="logged",
            attributes=["geo_region"],
            period_start=start,
            period_end=end,
        )


def test_progress_is_stored_on_the_audit_while_it_runs(register_trained, fair_training):
    audit = fairness_audit_create(version=register_trained(fair_training))
    seen = []

    def progress(done, total):
        seen.append(FairnessAudit.objects.get(pk=audit.pk).progress)

    audit = fairness_audit_execute_now(audit_id=audit.pk, progress=progress)
    assert seen and 0.1 <= min(seen) and max(seen) < 1.0 and seen == sorted(seen)
    assert audit.progress == 1.0


def test_a_complete_audit_is_immutable(register_trained, fair_training):
    audit = run(register_trained(fair_training))
    audit.verdict = "fail"
    with pytest.raises(AuditImmutableError):
        audit.save()
    with pytest.raises(AuditImmutableError):
        audit.delete()
    with pytest.raises(AuditImmutableError):
        FairnessAudit.objects.all().delete()
    assert FairnessAudit.objects.filter(pk=audit.pk).update(verdict="fail") == 0
    assert fairness_audit_execute_now(audit_id=audit.pk) is None
    audit.refresh_from_db()
    assert audit.verdict == "pass" and audit.status == "complete"


def test_bad_requests_are_refused_and_nothing_is_stored(register_trained, fair_training):
    version = register_trained(fair_training)
    events = traffic(500, proxy=0.0)
    log_traffic(version, events, labelled=np.zeros(len(events), bool))
    start, end = period_of(events)
    cases = [
        (dict(source="web"), "source"),
        (dict(attributes=[]), "attributes"),
        (dict(attributes=["geo region"]), "attributes[0]"),
        (dict(attributes=["a", "b", "c", "d"]), "attributes"),
        (dict(attributes=["geo_region", "geo_region"]), "attributes"),
        (dict(attributes=["role"]), "attributes"),
        (dict(source="logged"), "period_start"),
        (dict(source="logged", period_start=end, period_end=start), "period"),
        # rows exist in the period, but none carries a verdict
        (dict(source="logged", period_start=start, period_end=end), "period"),
    ]
    for change, field in cases:
        kw = {"version": version, "source": "evaluation", "attributes": ["geo_region"], **change}
        with pytest.raises(AuditInputError) as exc:
            fairness_audit_check_data(**kw)
            fairness_audit_create(**kw)
        assert exc.value.details["field"] == field, change
    assert FairnessAudit.objects.count() == 0


def test_an_audit_whose_data_vanished_is_marked_failed(register_trained, fair_training):
    version = register_trained(fair_training)
    events = traffic(300, proxy=0.0)
    start, end = period_of(events)
    audit = fairness_audit_create(
        version=version, source="logged", period_start=start, period_end=end
    )
    audit = fairness_audit_execute_now(audit_id=audit.pk)
    assert audit.status == "failed" and "no predictions" in audit.reasons[0]["message"]
    assert AuditEvent.objects.filter(action="fairness.audit_failed").exists()


def test_intersectional_attributes_on_logged_rows_keep_missing_values(
    register_trained, fair_training
):
    version = register_trained(fair_training)
    events = traffic(3000, proxy=0.0)
    log_traffic(version, events)
    from monitoring.models import PredictionLog

    rows = list(PredictionLog.objects.order_by("pk"))
    for i, row in enumerate(rows):
        if i % 3:
            row.attributes = {**row.attributes, "tier": "gold" if i % 2 else "silver"}
    PredictionLog.objects.bulk_update(rows, ["attributes"])
    start, end = period_of(events)
    audit = run(
        version,
        source="logged",
        period_start=start,
        period_end=end,
        attributes=["geo_region", "tier"],
    )
    names = {g["name"] for g in audit.groups}
    assert "geo_region=EU, tier=(missing)" in names and len(names) == 5 * 3
    expected = metrics_core.contingency(
        events.y,
        y_pred=np.array([r.decision for r in rows]).astype(int),
        sensitive={
            "geo_region": events.geo_region,
            "tier": np.array([r.attributes.get("tier", "(missing)") for r in rows]),
        },
    )
    got = {g["name"]: [g["cells"][c] for c in ("tn", "fp", "fn", "tp")] for g in audit.groups}
    assert got == {n: expected.counts[i].tolist() for i, n in enumerate(expected.names)}
