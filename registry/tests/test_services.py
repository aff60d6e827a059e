import pytest
from django.db import IntegrityError, connection, transaction

from conftest import npz
from core.audit import audit_verify
from core.models import AuditEvent
from registry import services
from registry.artifacts import ArtifactIntegrityError, booster_cache
from registry.models import ApprovalRequest, MLModelVersion
from registry.services import GovernanceError

pytestmark = pytest.mark.django_db


def test_registration_stores_the_artifact_its_hash_metrics_and_reference(register, trained):
    version = register()
    assert version.status == "training"
    assert len(version.model_hash) == 64 and version.artifact_format == "json"
    # metrics are recomputed from the held-out evaluation set, equal to training's own
    assert version.auc == pytest.approx(trained.metrics["auc"], abs=1e-9)
    assert version.precision == pytest.approx(trained.metrics["precision"], abs=1e-9)
    assert version.evaluation_rows == trained.validation_samples
    assert set(version.reference_summary["features"]) >= set(trained.feature_names)
    event = AuditEvent.objects.get(action="version.registered")
    assert event.payload["sha256"] == version.model_hash


def test_registration_refuses_bad_input_and_stores_nothing(
    registration_files, ml_engineer, artifact_root
):
    import pickle

    artifact, metadata, evaluation = registration_files
    cases = [
        ({"version": "1.0"}, "semantic version"),
        ({"artifact": pickle.dumps({"w": 1})}, "pickle"),
        ({"artifact": artifact[: len(artifact) // 2]}, "JSON"),
        ({"artifact": b'{"not": "a model"}'}, "not an XGBoost model"),
        ({"metadata": {**metadata, "feature_schema": []}}, "feature_schema is required"),
        (
            {"metadata": {**metadata, "feature_schema": metadata["feature_schema"][:-1]}},
            "expects 10 features",
        ),
        ({"evaluation": npz(X=[[1.0, 2.0]])}, "evaluation X"),
        ({"metadata": {**metadata, "surprise": 1}}, "unknown metadata"),
    ]
    for change, message in cases:
        kwargs = dict(
            model_name="threat",
            version="1.0.0",
            artifact=artifact,
            metadata=metadata,
            evaluation=evaluation,
            registered_by=ml_engineer,
        )
        kwargs.update(change)
        with pytest.raises(GovernanceError, match=message):
            services.model_version_register(**kwargs)
    assert MLModelVersion.objects.count() == 0


def test_a_duplicate_version_is_refused_with_409(register):
    register("1.0.0")
    with pytest.raises(GovernanceError) as exc:
        register("1.0.0")
    assert exc.value.status == 409


def test_only_allowed_transitions_happen(register, ml_engineer):
    version = register()
    with pytest.raises(GovernanceError, match="cannot move"):
        services.version_transition(version=version, to="staging", actor=ml_engineer)
    version = services.version_transition(version=version, to="testing", actor=ml_engineer)
    version = services.version_transition(version=version, to="staging", actor=ml_engineer)
    assert version.status == "staging"
    version = services.version_transition(version=version, to="archived", actor=ml_engineer)
    assert version.deprecated_at is not None
    with pytest.raises(GovernanceError, match="cannot move"):
        services.version_transition(version=version, to="staging", actor=ml_engineer)


def test_promotion_needs_an_approved_request(staged, approver):
    version = staged()
    with pytest.raises(GovernanceError, match="no approval"):
        services.version_transition(version=version, to="production", actor=approver)


def test_it_rejects_self_approval_and_audits_it(staged, make_user, ml_engineer):
    version = staged()
    engineer_approver = make_user("Approver", "eve")
    request = services.approval_request_create(version=version, actor=engineer_approver)
    with pytest.raises(GovernanceError, match="separation of duties") as exc:
        services.approval_decide(request=request, approver=engineer_approver, decision="approve")
    assert exc.value.status == 403
    assert AuditEvent.objects.filter(action="approval.self_approval_refused").count() == 1
    request.refresh_from_db()
    assert request.status == "pending" and request.decisions.count() == 0


def test_approve_then_promote_archives_the_previous_champion(approved, approver):
    first = approved("1.0.0")
    first = services.version_transition(version=first, to="production", actor=approver)
    assert first.deployed_at is not None and first.traffic_percentage == 100
    second = approved("1.1.0")
    services.version_transition(version=second, to="production", actor=approver)
    first.refresh_from_db()
    assert first.status == "archived" and first.deprecated_at is not None
    assert MLModelVersion.objects.filter(status="production").count() == 1


def test_rollback_restores_the_previous_production_version(approved, approver):
    first = approved("1.0.0")
    services.version_transition(version=first, to="production", actor=approver)
    second = approved("1.1.0")
    services.version_transition(version=second, to="production", actor=approver)
    restored = services.version_rollback(model=second.model, actor=approver, notes="FP spike")
    second.refresh_from_db()
    assert restored.pk == first.pk and restored.status == "production"
    assert second.status == "archived"
    assert AuditEvent.objects.filter(action="version.rolled_back").get().payload["to"] == "1.0.0"


def test_a_rejection_needs_notes_and_closes_the_request(staged, ml_engineer, approver):
    version = staged()
    request = services.approval_request_create(version=version, actor=ml_engineer)
    with pytest.raises(GovernanceError, match="needs notes"):
        services.approval_decide(request=request, approver=approver, decision="reject")
    services.approval_decide(
        request=request, approver=approver, decision="reject", notes="recall below production"
    )
    request.refresh_from_db()
    assert request.status == "rejected"


def test_two_distinct_approvers_when_the_policy_says_so(
    staged, ml_engineer, approver, second_approver
):
    version = staged()
    version.model.required_approvals = 2
    version.model.save()
    request = services.approval_request_create(version=version, actor=ml_engineer)
    services.approval_decide(request=request, approver=approver, decision="approve")
    request.refresh_from_db()
    assert request.status == "pending"
    with pytest.raises(GovernanceError, match="already decided"):
        services.approval_decide(request=request, approver=approver, decision="approve")
    services.approval_decide(request=request, approver=second_approver, decision="approve")
    request.refresh_from_db()
    version.refresh_from_db()
    assert request.status == "approved" and version.approved_by == second_approver


def test_metric_floors_block_approval(staged, ml_engineer, approver):
    version = staged()
    version.model.min_auc = 0.999
    version.model.save()
    request = services.approval_request_create(version=version, actor=ml_engineer)
    with pytest.raises(GovernanceError, match="approval policy") as exc:
        services.approval_decide(request=request, approver=approver, decision="approve")
    assert exc.value.details["failed_checks"][0]["check"] == "auc >= 0.999"


def test_the_fairness_gate_blocks_until_a_passing_audit(staged, ml_engineer, approver):
    from fairness.models import FairnessAudit
    from fairness.services import fairness_audit_execute_now

    version = staged(gate=True)
    request = services.approval_request_create(version=version, actor=ml_engineer)
    audit = FairnessAudit.objects.get(version=version, trigger="approval")
    with pytest.raises(GovernanceError) as exc:
        services.approval_decide(request=request, approver=approver, decision="approve")
    assert "pending" in exc.value.details["failed_checks"][0]["detail"]
    audit = fairness_audit_execute_now(audit_id=audit.pk)
    assert audit.status == "complete" and audit.verdict in ("pass", "fail", "inconclusive")
    if audit.verdict == "pass":
        services.approval_decide(request=request, approver=approver, decision="approve")
        request.refresh_from_db()
        assert request.status == "approved"
    else:
        with pytest.raises(GovernanceError, match="approval policy"):
            services.approval_decide(request=request, approver=approver, decision="approve")


def test_an_approval_expires_when_the_evidence_changes(approved, approver):
    version = approved()
    MLModelVersion.objects.filter(pk=version.pk).update(limitations="changed after approval")
    version.refresh_from_db()
    with pytest.raises(GovernanceError, match="expired"):
        services.version_transition(version=version, to="production", actor=approver)
    assert ApprovalRequest.objects.get(version=version).status == "expired"
    version.refresh_from_db()
    assert not version.is_approved()
    assert AuditEvent.objects.filter(action="approval.expired").exists()


def test_the_database_refuses_two_production_versions(approved, approver):
    first = approved("1.0.0")
    second = approved("1.1.0")
    MLModelVersion.objects.filter(pk=first.pk).update(status="production")
    with pytest.raises(IntegrityError), transaction.atomic():
        MLModelVersion.objects.filter(pk=second.pk).update(status="production")


def test_a_tampered_artifact_is_refused_and_audited(register, artifact_root):
    version = register()
    path = artifact_root / version.model_path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    booster_cache.clear()
    with pytest.raises(ArtifactIntegrityError, match="failed verification"):
        services.version_load_booster(version=version)
    event = AuditEvent.objects.get(action="artifact.verification_failed")
    assert event.payload["expected"] == version.model_hash


def test_a_cached_booster_is_reverified_when_the_file_changes(register, artifact_root):
    version = register()
    assert services.version_load_booster(version=version) is not None
    path = artifact_root / version.model_path
    path.write_bytes(path.read_bytes().replace(b'"learner"', b'"learnex"'))
    with pytest.raises(ArtifactIntegrityError):
        services.version_load_booster(version=version)


def test_audit_verify_names_an_edited_event(register):
    register()
    events = list(AuditEvent.objects.order_by("id"))
    assert audit_verify().ok and audit_verify().checked == len(events)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE registry_auditevent SET actor_label = %s WHERE id = %s",
            ["mallory", events[1].pk],
        )
    report = audit_verify()
    assert not report.ok and report.broken_id == events[1].pk and "edited" in report.reason


def test_audit_verify_detects_a_deleted_event(register, approved):
    approved()
    events = list(AuditEvent.objects.order_by("id"))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM registry_auditevent WHERE id = %s", [events[2].pk])
    report = audit_verify()
    assert not report.ok and report.broken_id == events[3].pk


def test_audit_verify_command_fails_on_a_broken_chain(register):
    from django.core.management import CommandError, call_command

    register()
    call_command("audit_verify")
    last = AuditEvent.objects.order_by("-id").first()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM registry_auditevent WHERE id = %s", [last.pk])
    with pytest.raises(CommandError, match="broken"):
        call_command("audit_verify")


def test_audit_events_cannot_be_changed_through_the_orm(register):
    register()
    event = AuditEvent.objects.first()
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def test_the_register_version_command(tmp_path, registration_files, ml_engineer, artifact_root):
    import json

    from django.core.management import CommandError, call_command

    artifact, metadata, evaluation = registration_files
    (tmp_path / "m.json").write_bytes(artifact)
    (tmp_path / "meta.json").write_text(json.dumps(metadata))
    (tmp_path / "eval.npz").write_bytes(evaluation)
    args = [
        "threat",
        "3.0.0",
        "--artifact",
        str(tmp_path / "m.json"),
        "--metadata",
        str(tmp_path / "meta.json"),
        "--evaluation",
        str(tmp_path / "eval.npz"),
    ]
    call_command("register_version", *args, "--as-user", ml_engineer.username)
    assert MLModelVersion.objects.get(version="3.0.0").evaluation_rows > 0
    with pytest.raises(CommandError, match="already registered"):
        call_command("register_version", *args, "--as-user", ml_engineer.username)
    (tmp_path / "m.json").write_bytes(b"\x80\x04not a model")
    args[1] = "3.0.1"
    with pytest.raises(CommandError, match="pickle"):
        call_command("register_version", *args, "--as-user", ml_engineer.username)
