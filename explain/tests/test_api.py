import numpy as np
import pytest
import shap
import xgboost as xgb

from core.models import AuditEvent
from explain.models import Explanation
from explain.shap_core import ADDITIVITY_TOLERANCE
from explain.tests.conftest import booster_of
from registry import services

pytestmark = pytest.mark.django_db


def url(incident_id, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/api/ml/explain/{incident_id}" + (f"?{query}" if query else "")


@pytest.fixture
def version(register):
    return register()


@pytest.fixture
def incidents(version, trained, log_predictions):
    return log_predictions(version, trained.X_valid[:8])


def reference_shap(version, X):
    return shap.TreeExplainer(booster_of(version)).shap_values(np.atleast_2d(X))


def test_shap_values_equal_shap_tree_explainer_on_the_same_booster_and_row(
    version, incidents, api_as, soc_service, trained
):
    client = api_as(soc_service)
    names = version.feature_names
    reference = shap.TreeExplainer(booster_of(version))
    expected = reference.shap_values(trained.X_valid[:8])
    base = reference.expected_value  # shap sets it from XGBoost's bias term while explaining
    for i, prediction in enumerate(incidents):
        body = client.get(url(prediction.incident_id)).json()
        got = np.array([body["explanation"]["all_features"][n] for n in names])
        assert np.max(np.abs(got - expected[i])) <= 1e-6
        assert body["base_value"] == pytest.approx(float(np.ravel(base)[0]), abs=1e-6)
        margin = booster_of(version).predict(
            xgb.DMatrix(trained.X_valid[i : i + 1], feature_names=names), output_margin=True
        )[0]
        assert body["margin"] == pytest.approx(float(margin), abs=1e-6)
        assert abs(body["base_value"] + got.sum() - body["margin"]) <= ADDITIVITY_TOLERANCE
        assert body["probability"] == pytest.approx(prediction.score, abs=1e-6)


def test_the_response_has_the_brief_shape_plus_version_and_values(
    version, incidents, api_as, analyst
):
    response = api_as(analyst).get(url(incidents[0].incident_id, top_k=3))
    assert response.status_code == 200
    body = response.json()
    assert body["incident_id"] == incidents[0].incident_id
    assert body["prediction_score"] == pytest.approx(incidents[0].score)
    explanation = body["explanation"]
    assert len(explanation["top_positive"]) <= 3 and len(explanation["top_negative"]) <= 3
    assert all(value > 0 for _, value in explanation["top_positive"])
    assert all(value < 0 for _, value in explanation["top_negative"])
    magnitudes = [abs(v) for v in explanation["all_features"].values()]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert set(explanation["all_features"]) == set(version.feature_names)
    assert body["model_version"] == {
        "id": version.pk,
        "model": "threat",
        "version": "1.0.0",
        "status": version.status,
        "artifact_sha256": version.model_hash,
    }
    assert body["feature_values"] == incidents[0].feature_dict()
    assert body["output"] == "log-odds"


def test_an_unknown_incident_is_a_404_json_error(version, api_as, soc_service):
    response = api_as(soc_service).get(url("INC-does-not-exist"))
    assert response.status_code == 404
    assert response.json()["error"].startswith("no prediction is logged")
    assert response.json()["details"] == {"incident_id": "INC-does-not-exist"}


@pytest.mark.parametrize("top_k", ["0", "abc", "51"])
def test_a_bad_top_k_is_a_400(incidents, api_as, soc_service, top_k):
    response = api_as(soc_service).get(url(incidents[0].incident_id, top_k=top_k))
    assert response.status_code == 400
    assert response.json()["details"]["field"] == "top_k"


def test_a_second_request_is_served_from_the_cache(incidents, api_as, soc_service):
    client = api_as(soc_service)
    first = client.get(url(incidents[0].incident_id)).json()
    second = client.get(url(incidents[0].incident_id)).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["explanation"] == second["explanation"]
    assert Explanation.objects.count() == 1


def test_identical_rows_of_one_version_share_one_cached_explanation(
    version, trained, log_predictions, api_as, soc_service
):
    rows = log_predictions(version, np.repeat(trained.X_valid[:1], 2, axis=0), ids=["A", "B"])
    client = api_as(soc_service)
    assert client.get(url(rows[0].incident_id)).json()["cached"] is False
    assert client.get(url(rows[1].incident_id)).json()["cached"] is True
    assert Explanation.objects.count() == 1


def test_a_new_version_is_a_new_cache_key(
    version, register_other, trained, log_predictions, api_as, soc_service
):
    other = register_other()
    assert other.model_hash != version.model_hash
    x = trained.X_valid[:1]
    log_predictions(version, x, ids=["SAME"])
    log_predictions(other, x, ids=["SAME"], role="shadow")
    client = api_as(soc_service)
    champion = client.get(url("SAME")).json()
    shadow = client.get(url("SAME", version="1.1.0")).json()
    assert shadow["cached"] is False
    assert Explanation.objects.filter(version=version).count() == 1
    assert Explanation.objects.filter(version=other).count() == 1
    assert champion["explanation"] != shadow["explanation"]
    expected = reference_shap(other, x)[0]
    got = np.array([shadow["explanation"]["all_features"][n] for n in other.feature_names])
    assert np.max(np.abs(got - expected)) <= 1e-6


def test_a_deleted_cache_entry_is_recomputed_identically(incidents, api_as, soc_service):
    client = api_as(soc_service)
    first = client.get(url(incidents[0].incident_id)).json()
    Explanation.objects.all().delete()
    again = client.get(url(incidents[0].incident_id)).json()
    assert again["cached"] is False
    assert again["explanation"] == first["explanation"]


def test_a_stored_explanation_that_does_not_add_up_is_an_error(incidents, api_as, soc_service):
    client = api_as(soc_service)
    client.get(url(incidents[0].incident_id))
    Explanation.objects.update(margin=5.0)
    response = client.get(url(incidents[0].incident_id))
    assert response.status_code == 500
    assert "does not add up" in response.json()["error"]


def test_the_acting_prediction_is_explained_unless_a_version_is_asked_for(
    version, register_other, trained, log_predictions, api_as, soc_service
):
    other = register_other()
    x = trained.X_valid[3:4]
    log_predictions(other, x, ids=["AB-1"], role="shadow")
    log_predictions(version, x, ids=["AB-1"], role="champion")
    client = api_as(soc_service)
    assert client.get(url("AB-1")).json()["model_version"]["version"] == "1.0.0"
    assert client.get(url("AB-1", version="1.1.0")).json()["prediction"]["role"] == "shadow"
    assert client.get(url("AB-1", version=str(other.pk))).json()["model_version"]["id"] == other.pk
    missing = client.get(url("AB-1", version="9.9.9"))
    assert missing.status_code == 404
    assert sorted(missing.json()["details"]["scored_by"]) == ["threat 1.0.0", "threat 1.1.0"]


def test_the_scoring_version_explains_even_after_a_new_version_is_promoted(
    approved, register_other, trained, log_predictions, api_as, soc_service, approver, ml_engineer
):
    old = services.version_transition(version=approved(), to="production", actor=approver)
    rows = log_predictions(old, trained.X_valid[:2])
    new = register_other()
    for to in ("testing", "staging"):
        new = services.version_transition(version=new, to=to, actor=ml_engineer)
    request = services.approval_request_create(version=new, actor=ml_engineer)
    services.approval_decide(request=request, approver=approver, decision="approve")
    new.refresh_from_db()
    services.version_transition(version=new, to="production", actor=approver)

    body = api_as(soc_service).get(url(rows[1].incident_id)).json()
    assert body["model_version"]["version"] == "1.0.0"
    assert body["model_version"]["status"] == "archived"
    old.refresh_from_db()
    expected = reference_shap(old, trained.X_valid[1:2])[0]
    got = np.array([body["explanation"]["all_features"][n] for n in old.feature_names])
    assert np.max(np.abs(got - expected)) <= 1e-6


def test_a_tampered_artifact_is_a_409_with_an_audit_event_and_no_explanation(
    version, incidents, api_as, soc_service, artifact_root
):
    client = api_as(soc_service)
    assert client.get(url(incidents[0].incident_id)).status_code == 200  # cached now
    path = artifact_root / version.model_path
    path.write_bytes(path.read_bytes().replace(b'"', b"'", 1))
    for incident in (incidents[0], incidents[1]):  # the cached one too
        response = client.get(url(incident.incident_id))
        assert response.status_code == 409
        body = response.json()
        assert "failed verification" in body["error"]
        assert body["details"]["expected_sha256"] == version.model_hash
        assert "explanation" not in body
    events = AuditEvent.objects.filter(action="artifact.verification_failed")
    assert events.count() == 2
    assert events.first().actor == soc_service
    assert Explanation.objects.count() == 1


@pytest.mark.parametrize(
    "role, status",
    [
        ("SOC service", 200),
        ("Analyst", 200),
        ("Auditor", 200),
        ("ML engineer", 200),
        ("Approver", 200),
        (None, 403),
    ],
)
def test_roles_reading_the_api(incidents, api_as, make_user, role, status):
    response = api_as(make_user(role)).get(url(incidents[0].incident_id))
    assert response.status_code == status
    if status == 403:
        assert AuditEvent.objects.filter(action="permission.denied").exists()


def test_anonymous_callers_get_a_401(incidents, api_as):
    response = api_as(None).get(url(incidents[0].incident_id))
    assert response.status_code == 401
    assert "error" in response.json()


def test_the_explainer_is_built_once_per_artifact_and_reused(
    version, incidents, api_as, soc_service, monkeypatch
):
    from explain import services, shap_core

    shap_core._EXPLAINERS.clear()
    built = []
    real_init = shap_core.Explainer.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(shap_core.Explainer, "__init__", counting_init)
    client = api_as(soc_service)
    for prediction in incidents:
        assert client.get(url(prediction.incident_id)).json()["cached"] is False
    assert len(built) == 1
    explainer = services.version_explainer(version=version)
    assert explainer is services.version_explainer(version=version)
    assert explainer.feature_names == tuple(version.feature_names)
