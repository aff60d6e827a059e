from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEvent
from explain.models import Explanation
from explain.services import explanations_precompute, high_risk_predictions
from monitoring.models import FeedbackEvent, PredictionLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(register):
    return register()


@pytest.fixture
def incidents(version, trained, log_predictions):
    return log_predictions(version, trained.X_valid[:30], ids=[f"INC-{i}" for i in range(30)])


@pytest.fixture
def ab(version, register_other, trained, log_predictions):
    """INC-AB scored by 1.0.0 (champion) and 1.1.0 (shadow)."""
    other = register_other()
    x = trained.X_valid[40:41]
    log_predictions(version, x, ids=["INC-AB"])
    log_predictions(other, x, ids=["INC-AB"], role="shadow")
    return version, other


@pytest.fixture
def client_as(client):
    def make(user):
        client.force_login(user)
        return client

    return make


PAGES = [
    "/explain/",
    "/explain/incidents/INC-3/",
    "/explain/incidents/INC-3/compare/",
    "/explain/versions/{pk}/importance/",
]


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize(
    "role, status",
    [("Analyst", 200), ("Auditor", 200), ("ML engineer", 200), ("Approver", 200), (None, 403)],
)
def test_roles_reading_the_pages(incidents, version, client_as, make_user, path, role, status):
    response = client_as(make_user(role)).get(path.format(pk=version.pk))
    assert response.status_code == status
    if status == 403:
        assert AuditEvent.objects.filter(action="permission.denied").exists()


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(incidents, version, client, path):
    response = client.get(path.format(pk=version.pk))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_incident_page_shows_version_values_and_both_scales(
    incidents, version, client_as, analyst
):
    response = client_as(analyst).get("/explain/incidents/INC-3/")
    body = response.content.decode()
    explanation = Explanation.objects.get()
    assert "threat 1.0.0" in body and f"badge {version.status}" in body
    assert f"{explanation.margin:.4f} log-odds" in body
    assert f"p = {explanation.probability:.4f}" in body
    assert f"{explanation.base_value:.4f} log-odds" in body
    assert 'href="/monitoring/?model=threat"' in body
    waterfall = response.context["waterfall"]
    n = len(version.feature_names)
    assert len(waterfall["bars"]) == 1 + min(n, 8) + (1 if n > 8 else 0) + 1
    assert waterfall["bars"][-1]["running"] == pytest.approx(explanation.margin, abs=1e-9)
    contribution = dict(zip(version.feature_names, explanation.contribution_vector(), strict=True))
    names = [r["name"] for r in response.context["rows"]]
    assert names == sorted(version.feature_names, key=lambda name: -abs(contribution[name]))
    assert 'data-testid="submit-verdict"' in body


def test_auditors_see_no_verdict_form(incidents, client_as, auditor):
    body = client_as(auditor).get("/explain/incidents/INC-3/").content.decode()
    assert 'data-testid="submit-verdict"' not in body


def test_an_unknown_incident_page_is_a_404(incidents, client_as, analyst):
    assert client_as(analyst).get("/explain/incidents/nope/").status_code == 404


def test_a_tampered_artifact_page_is_a_409(incidents, version, client_as, analyst, artifact_root):
    path = artifact_root / version.model_path
    path.write_bytes(path.read_bytes() + b" ")
    response = client_as(analyst).get("/explain/incidents/INC-3/")
    assert response.status_code == 409
    assert "failed verification" in response.content.decode()
    assert AuditEvent.objects.filter(action="artifact.verification_failed").exists()


def test_the_list_filters_by_score_date_verdict_and_paginates(
    incidents, version, client_as, analyst
):
    client = client_as(analyst)
    assert client.get("/explain/").context["page"].paginator.count == 30
    high = [p for p in incidents if p.score >= 0.5]
    response = client.get("/explain/?score_min=0.5")
    assert {p.pk for p in response.context["page"]} == {p.pk for p in high}
    PredictionLog.objects.filter(pk=incidents[0].pk).update(
        label=1, created_at=timezone.now() - timedelta(days=3)
    )
    assert [p.pk for p in client.get("/explain/?verdict=threat").context["page"]] == [
        incidents[0].pk
    ]
    assert client.get("/explain/?verdict=none").context["page"].paginator.count == 29
    day = (timezone.now() - timedelta(days=3)).date().isoformat()
    response = client.get(f"/explain/?start={day}&end={day}")
    assert [p.pk for p in response.context["page"]] == [incidents[0].pk]
    assert client.get("/explain/?model=other").context["page"].paginator.count == 0


def test_the_list_pages_through_many_incidents(
    version, trained, log_predictions, client_as, analyst
):
    log_predictions(version, trained.X_valid[:120], ids=[f"P-{i}" for i in range(120)])
    client = client_as(analyst)
    first = client.get("/explain/")
    assert len(first.context["page"]) == 50 and first.context["page"].paginator.num_pages == 3
    third = client.get("/explain/?page=3")
    assert len(third.context["page"]) == 20


def test_shadow_rows_are_listed_when_their_version_is_chosen(ab, client_as, analyst):
    champion, shadow = ab
    client = client_as(analyst)
    assert [p.role for p in client.get("/explain/").context["page"]] == ["champion"]
    rows = client.get(f"/explain/?version={shadow.pk}").context["page"]
    assert [(p.role, p.version_id) for p in rows] == [("shadow", shadow.pk)]


@pytest.mark.parametrize(
    "query", ["score_min=high", "start=yesterday", "verdict=maybe", "version=x"]
)
def test_bad_filters_are_a_400_that_says_which(incidents, client_as, analyst, query):
    response = client_as(analyst).get(f"/explain/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.context["filters"].errors


def test_the_list_marks_cached_explanations(incidents, version, client_as, analyst):
    version.model.explain_threshold = 0.0
    version.model.save(update_fields=["explain_threshold"])
    explanations_precompute(predictions=high_risk_predictions().filter(pk=incidents[5].pk))
    explained = client_as(analyst).get("/explain/").context["explained"]
    assert explained == {incidents[5].pk}


def test_the_comparison_shows_both_versions(ab, client_as, analyst):
    champion, shadow = ab
    client = client_as(analyst)
    incident = client.get("/explain/incidents/INC-AB/").content.decode()
    assert 'data-testid="compare-link"' in incident
    response = client.get("/explain/incidents/INC-AB/compare/")
    assert response.status_code == 200
    sides = response.context["sides"]
    assert [s["version"].pk for s in sides] == [champion.pk, shadow.pk]
    table = response.context["table"]
    assert len(table) == len(champion.feature_names)
    for row in table:
        assert row["delta"] == pytest.approx(row["b"] - row["a"])
    assert Explanation.objects.count() == 2


def test_the_importance_page_ranks_features_by_mean_absolute_shap(
    incidents, version, client_as, analyst
):
    client = client_as(analyst)
    empty = client.get(f"/explain/versions/{version.pk}/importance/")
    assert 'data-testid="no-explanations"' in empty.content.decode()
    version.model.explain_threshold = 0.0
    version.model.save(update_fields=["explain_threshold"])
    explanations_precompute(predictions=high_risk_predictions())
    response = client.get(f"/explain/versions/{version.pk}/importance/")
    result = response.context["result"]
    assert result.count == Explanation.objects.count()
    assert result.mean_abs == sorted(result.mean_abs, reverse=True)
    import numpy as np

    values = np.array([e.contribution_vector() for e in Explanation.objects.all()])
    top = version.feature_names[int(np.argmax(np.abs(values).mean(axis=0)))]
    assert result.names[0] == top
    assert result.strips[0]["feature"] == top
    assert len(result.strips[0]["shap"]) == result.count


def test_an_analyst_records_a_verdict_on_every_prediction_of_the_incident(ab, client_as, analyst):
    client = client_as(analyst)
    response = client.post(
        "/explain/incidents/INC-AB/verdict/", {"verdict": "benign", "note": "VPN exit"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/explain/incidents/INC-AB/"
    rows = PredictionLog.objects.filter(incident_id="INC-AB")
    assert {(r.label, r.labelled_by_id) for r in rows} == {(0, analyst.pk)}
    assert (
        FeedbackEvent.objects.filter(prediction__incident_id="INC-AB", note="VPN exit").count() == 2
    )
    page = client.get("/explain/incidents/INC-AB/").content.decode()
    assert "Verdict recorded" in page and "badge pass" in page


def test_a_verdict_needs_a_valid_choice_and_the_feedback_permission(
    incidents, client_as, analyst, auditor, client
):
    assert (
        client.post("/explain/incidents/INC-1/verdict/", {"verdict": "threat"}).status_code == 302
    )
    assert (
        client_as(auditor)
        .post("/explain/incidents/INC-1/verdict/", {"verdict": "threat"})
        .status_code
        == 403
    )
    client = client_as(analyst)
    assert client.post("/explain/incidents/INC-1/verdict/", {"verdict": "maybe"}).status_code == 400
    assert client.get("/explain/incidents/INC-1/verdict/").status_code == 405
    assert client.post("/explain/incidents/nope/verdict/", {"verdict": "threat"}).status_code == 404
    assert not FeedbackEvent.objects.exists()


def test_the_verdict_form_is_csrf_protected(incidents, analyst):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(analyst)
    response = client.post("/explain/incidents/INC-1/verdict/", {"verdict": "threat"})
    assert response.status_code == 403
    assert not FeedbackEvent.objects.exists()


def test_the_incident_page_shows_the_verdict_history_with_notes(incidents, client_as, analyst):
    client = client_as(analyst)
    for verdict, note in (("benign", "VPN exit node"), ("threat", "same host beaconing")):
        response = client.post(
            "/explain/incidents/INC-3/verdict/", {"verdict": verdict, "note": note}
        )
        assert response.status_code == 302
    page = client.get("/explain/incidents/INC-3/").content.decode()
    history = page[page.index('data-testid="verdict-history"') :]
    assert history.index("VPN exit node") < history.index("same host beaconing")
    assert "benign → threat" in history and analyst.username in history
    events = AuditEvent.objects.filter(action__startswith="verdict.").order_by("id")
    assert [e.action for e in events] == ["verdict.recorded", "verdict.changed"]
    assert events[1].payload["note"] == "same host beaconing"
