"""Traffic services and API: validation, roles, audit, lifecycle consistency, ETags."""

import pytest
from django.db import IntegrityError, transaction

from core.models import AuditEvent
from registry import services
from registry.models import Experiment, MLModelVersion, TrafficSplit
from registry.routing import route
from registry.tests.ab_support import (
    live_fixture,  # noqa: F401
    log,
)
from registry.traffic import traffic_preview, traffic_set

pytestmark = pytest.mark.django_db


def shares(model):
    return {v.version: v.traffic_percentage for v in model.versions.all()}


def put(client, name="threat", **body):
    return client.put(f"/api/v1/models/{name}/traffic/", body, format="json")


def test_an_approver_splits_traffic_and_the_versions_mirror_it(live, approver, api_as):
    champion, challenger = live
    response = put(
        api_as(approver),
        challenger="1.1.0",
        challenger_percentage=10,
        hypothesis="1.1.0 is as precise without the proxy",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["champion"]["percentage"] == 90 and body["challenger"]["percentage"] == 10
    assert shares(champion.model) == {"1.0.0": 90.0, "1.1.0": 10.0}
    experiment = Experiment.objects.get()
    assert experiment.status == "running" and experiment.champion == champion
    assert AuditEvent.objects.filter(action="traffic.changed").count() == 1
    assert AuditEvent.objects.filter(action="experiment.started").count() == 1


def test_raising_the_share_keeps_the_experiment_and_records_the_change(live, approver):
    champion, challenger = live
    for bp in (1000, 2000):
        traffic_set(
            model=champion.model,
            challenger=challenger,
            challenger_bp=bp,
            shadows=[],
            actor=approver,
        )
    experiment = Experiment.objects.get()
    assert experiment.challenger_bp == 2000
    assert [e.action for e in experiment.events.all()] == ["started", "split_changed"]


@pytest.mark.parametrize(
    "body,field",
    [
        (
            {"challenger": "1.1.0", "challenger_percentage": 10, "champion_percentage": 80},
            "champion_percentage",
        ),
        ({"challenger": "1.1.0", "challenger_percentage": 101}, "challenger_percentage"),
        ({"challenger": "1.1.0", "challenger_percentage": -1}, "challenger_percentage"),
        ({"challenger": "1.1.0", "challenger_percentage": "NaN"}, "challenger_percentage"),
        ({"challenger": "1.1.0", "challenger_percentage": 10.001}, "challenger_percentage"),
        ({"challenger": None, "challenger_percentage": 10}, "challenger"),
        ({"challenger": "9.9.9", "challenger_percentage": 10}, "challenger"),
        ({"challenger": "1.1.0", "challenger_percentage": 10, "shadows": ["7.0.0"]}, "shadows[0]"),
        ({"challenger": "1.1.0", "challenger_percentage": 10, "colour": "red"}, "colour"),
        ({"challenger": "1.1.0", "challenger_percentage": 10, "shadows": "1.1.0"}, "shadows"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_stores_nothing(
    live, approver, api_as, body, field
):
    response = api_as(approver).put("/api/v1/models/threat/traffic/", body, format="json")
    assert response.status_code == 400, response.json()
    payload = response.json()
    assert set(payload) == {"error", "details"}
    assert field in payload["details"] or payload["details"].get("field") == field
    assert not TrafficSplit.objects.exists() and not Experiment.objects.exists()
    assert shares(live[0].model) == {"1.0.0": 100.0, "1.1.0": 0.0}


def test_only_approved_staging_versions_take_live_traffic(live, staged, approver, api_as):
    unapproved = staged("1.2.0")
    response = put(api_as(approver), challenger="1.2.0", challenger_percentage=10)
    assert response.status_code == 409
    assert "approved" in response.json()["error"]
    # a staging version may shadow without approval
    response = put(api_as(approver), shadows=["1.2.0"])
    assert response.status_code == 200, response.json()
    assert [s["version"] for s in response.json()["shadows"]] == [unapproved.version]


def test_shadows_need_staging_at_least(live, register, approver, api_as):
    register("1.3.0")  # still in training
    response = put(api_as(approver), shadows=["1.3.0"])
    assert response.status_code == 409
    assert response.json()["details"]["field"] == "shadows[0]"


@pytest.mark.parametrize("persona", [None, "ml_engineer", "analyst", "auditor", "soc_service"])
def test_only_approvers_change_traffic(live, api_as, request, persona):
    user = request.getfixturevalue(persona) if persona else None
    response = put(api_as(user), challenger="1.1.0", challenger_percentage=10)
    assert response.status_code == (401 if user is None else 403)
    assert not TrafficSplit.objects.exists()


@pytest.mark.parametrize(
    "persona", ["soc_service", "analyst", "ml_engineer", "approver", "auditor"]
)
def test_readers_get_the_config_and_routes(live, api_as, request, persona):
    client = api_as(request.getfixturevalue(persona))
    assert client.get("/api/v1/models/threat/traffic/").status_code == 200
    assert client.get("/api/v1/models/threat/route/?entity=h1").status_code == 200


def test_anonymous_and_roleless_callers_cannot_route(live, api_as, make_user):
    assert api_as().get("/api/v1/models/threat/route/?entity=h1").status_code == 401
    nobody = make_user(None, "nobody")
    assert api_as(nobody).get("/api/v1/models/threat/route/?entity=h1").status_code == 403
    assert api_as(nobody).get("/api/v1/models/threat/traffic/").status_code == 403


def test_the_route_endpoint_is_sticky_and_agrees_with_the_published_config(
    live, approver, soc_service, api_as
):
    from registry.routing import PublishedRouter

    put(api_as(approver), challenger="1.1.0", challenger_percentage=30)
    client = api_as(soc_service)
    router = PublishedRouter(client.get("/api/v1/models/threat/traffic/").json())
    arms = []
    for i in range(200):
        body = client.get(f"/api/v1/models/threat/route/?entity=host-{i}").json()
        assert body == client.get(f"/api/v1/models/threat/route/?entity=host-{i}").json()
        entry, arm = router.decide(f"host-{i}")
        assert (body["version"], body["arm"]) == (entry["version"], arm)
        arms.append(arm)
    assert {"champion", "challenger"} == set(arms)


def test_route_needs_an_entity_and_a_serving_version(live, register, soc_service, api_as):
    client = api_as(soc_service)
    response = client.get("/api/v1/models/threat/route/")
    assert response.status_code == 400 and response.json()["details"]["field"] == "entity"
    assert client.get(f"/api/v1/models/threat/route/?entity={'x' * 300}").status_code == 400
    assert client.get("/api/v1/models/nope/route/?entity=a").status_code == 404
    register("1.0.0", model="empty")
    assert client.get("/api/v1/models/empty/route/?entity=a").status_code == 409


def test_the_config_has_an_etag_and_answers_304_until_it_changes(live, approver, api_as):
    client = api_as(approver)
    first = client.get("/api/v1/models/threat/traffic/")
    etag = first.headers["ETag"]
    again = client.get("/api/v1/models/threat/traffic/", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    put(client, challenger="1.1.0", challenger_percentage=5)
    changed = client.get("/api/v1/models/threat/traffic/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_a_stale_revision_is_refused_with_412(live, approver, api_as):
    client = api_as(approver)
    revision = client.get("/api/v1/models/threat/traffic/").json()["revision"]
    ok = put(client, challenger="1.1.0", challenger_percentage=5, revision=revision)
    assert ok.status_code == 200
    stale = put(client, challenger="1.1.0", challenger_percentage=50, revision=revision)
    assert stale.status_code == 412
    assert TrafficSplit.objects.get().challenger_bp == 500


def test_the_database_refuses_a_split_that_does_not_sum_to_100(live, approver):
    champion, challenger = live
    traffic_set(
        model=champion.model, challenger=challenger, challenger_bp=1000, shadows=[], actor=approver
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        TrafficSplit.objects.update(challenger_bp=2000)
    with pytest.raises(IntegrityError), transaction.atomic():
        TrafficSplit.objects.update(challenger=None)


def test_promoting_the_challenger_ends_its_experiment(live, approver):
    champion, challenger = live
    traffic_set(
        model=champion.model, challenger=challenger, challenger_bp=2000, shadows=[], actor=approver
    )
    services.version_transition(version=challenger, to="production", actor=approver)
    split = TrafficSplit.objects.get()
    assert (split.champion, split.challenger, split.champion_bp) == (challenger, None, 10_000)
    experiment = Experiment.objects.get()
    assert experiment.status == "ended" and "production" in experiment.end_reason
    assert shares(champion.model) == {"1.0.0": 0.0, "1.1.0": 100.0}
    assert route(champion.model, "anyone").version == challenger


def test_archiving_the_challenger_or_a_shadow_removes_it_from_the_split(live, staged, approver):
    champion, challenger = live
    shadow = staged("1.2.0")
    traffic_set(
        model=champion.model,
        challenger=challenger,
        challenger_bp=2000,
        shadows=[shadow],
        actor=approver,
    )
    services.version_transition(version=challenger, to="archived", actor=approver)
    services.version_transition(version=shadow, to="archived", actor=approver)
    split = TrafficSplit.objects.get()
    assert split.challenger is None and split.champion_bp == 10_000
    assert not split.shadows.exists()
    assert shares(champion.model)["1.0.0"] == 100.0
    assert AuditEvent.objects.filter(action="traffic.reconciled").count() == 2


def test_a_rollback_of_the_champion_ends_the_experiment(live, approved, approver):
    champion, challenger = live
    newer = approved("1.2.0")
    services.version_transition(version=newer, to="production", actor=approver)
    traffic_set(
        model=champion.model, challenger=challenger, challenger_bp=1000, shadows=[], actor=approver
    )
    services.version_rollback(model=champion.model, actor=approver)
    split = TrafficSplit.objects.get()
    assert split.champion.version == "1.0.0" and split.challenger is None
    assert Experiment.objects.get().end_reason.startswith("the champion changed")
    assert MLModelVersion.objects.get(version="1.0.0").traffic_percentage == 100


def test_the_preview_counts_the_entities_that_change_version(live, approver):
    champion, challenger = live
    for i in range(400):
        log(champion, "champion", decision=False, label=None, entity=f"e{i}")
    traffic_set(
        model=champion.model, challenger=challenger, challenger_bp=1000, shadows=[], actor=approver
    )
    grow = traffic_preview(model=champion.model, challenger=challenger, challenger_bp=3000)
    assert grow.entities == 400 and grow.out_of_challenger == 0
    from registry.routing import is_challenger

    salt = champion.model.experiment_salt
    expected = sum(
        is_challenger(salt, f"e{i}", 3000) and not is_challenger(salt, f"e{i}", 1000)
        for i in range(400)
    )
    assert grow.into_challenger == expected > 0
    stop = traffic_preview(model=champion.model, challenger=None, challenger_bp=0)
    assert stop.out_of_challenger == sum(is_challenger(salt, f"e{i}", 1000) for i in range(400))


def test_route_permission_follows_the_model_backend_rule(live, api_as, make_user):
    from django.contrib.auth.models import Permission

    direct = make_user(None, "direct_perm")
    direct.user_permissions.add(Permission.objects.get(codename="view_mlmodelversion"))
    assert api_as(direct).get("/api/v1/models/threat/route/?entity=a").status_code == 200
    boss = make_user(None, "boss", is_superuser=True)
    assert api_as(boss).get("/api/v1/models/threat/route/?entity=a").status_code == 200
    nobody = make_user(None, "nobody")
    assert api_as(nobody).get("/api/v1/models/missing/route/?entity=a").status_code == 403
    assert api_as(boss).get("/api/v1/models/missing/route/?entity=a").status_code == 404
    denied = AuditEvent.objects.filter(action="permission.denied", actor=nobody)
    assert denied.count() == 1


def test_the_route_lists_the_current_shadows(live, staged, approver, soc_service, api_as):
    staged("1.2.0")
    client, admin = api_as(soc_service), api_as(approver)
    assert (
        put(admin, challenger="1.1.0", challenger_percentage=10, shadows=["1.2.0"]).status_code
        == 200
    )
    body = client.get("/api/v1/models/threat/route/?entity=a").json()
    assert [s["version"] for s in body["shadows"]] == ["1.2.0"]
    assert put(admin, challenger="1.1.0", challenger_percentage=10).status_code == 200
    assert client.get("/api/v1/models/threat/route/?entity=a").json()["shadows"] == []
