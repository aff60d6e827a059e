"""Prediction ingest that does not trust the client (the "Hostile artifacts and inputs"
issue): values beyond float32, odd UTC offsets, a request_id re-sent with other content,
a role the split does not give the version, categorical codes outside the levels, and
the true count of a batch with more errors than the answer lists.

Every refused batch is a 4xx naming its items and stores nothing.
"""

from datetime import timedelta, timezone

import pytest
from django.utils import timezone as dj_timezone

from monitoring.models import PredictionLog
from registry import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def champion(approved, approver):
    version = approved("1.0.0")
    return services.version_transition(version=version, to="production", actor=approver)


def item(scoring, i=0, **overrides):
    features = {f["name"]: float(j % 3) for j, f in enumerate(scoring.feature_schema)}
    body = {
        "request_id": f"req-{i}",
        "model": scoring.model.name,
        "incident_id": f"INC-{i}",
        "entity": f"host-{i % 7}",
        "features": features,
        "score": 0.8,
    }
    body.update(overrides)
    return body


def post(client, items):
    return client.post("/api/v1/predictions/", {"predictions": items}, format="json")


def refused(response, status=400):
    assert response.status_code == status, response.content[:500]
    assert PredictionLog.objects.count() == 0
    return response.json()


def with_feature(version, name, value, i=0, **overrides):
    body = item(version, i, **overrides)
    body["features"][name] = value
    return body


# --- numbers beyond float32 ----------------------------------------------------------


@pytest.mark.parametrize("value", [1e300, -1e39, 3.5e38])
def test_a_feature_value_beyond_float32_is_refused_per_item(api_as, soc_service, champion, value):
    items = [item(champion, i) for i in range(5)]
    items[2]["features"]["bytes_out"] = value
    body = refused(post(api_as(soc_service), items))
    (error,) = body["details"]["errors"]
    assert (error["index"], error["field"]) == (2, "features.bytes_out")
    assert "float32" in error["reason"]


def test_the_largest_float32_is_accepted(api_as, soc_service, champion):
    response = post(api_as(soc_service), [with_feature(champion, "bytes_out", 3.4028234e38)])
    assert response.status_code == 201, response.content[:300]


def test_precompute_isolates_a_row_beyond_float32(champion, trained):
    """A row stored before ingest refused such values: the other 39 of its batch are
    explained and stored, the bad one is reported as skipped with a reason."""
    from explain.models import Explanation
    from explain.tasks import explain_predictions
    from tests import factories

    champion.model.explain_threshold = 0.0
    champion.model.save(update_fields=["explain_threshold"])
    X = trained.X_valid[:40].astype("float64").copy()
    X[17, 0] = 1e300
    rows = factories.predictions_log(
        champion,
        [
            {"request_id": f"p-{i}", "incident_id": f"P-{i}", "features": X[i], "score": 0.9}
            for i in range(40)
        ],
    )
    report = explain_predictions([row.pk for row in rows])
    assert (
        Explanation.objects.count()
        == report["explained"]
        == len({X[i].tobytes() for i in range(40) if i != 17})
    )
    assert report["skipped"] == [
        {"prediction": rows[17].pk, "reason": "a feature value is not finite in float32"}
    ]


# --- timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "offset",
    [
        timedelta(hours=5, minutes=30, seconds=15, microseconds=123456),
        timedelta(hours=23, minutes=59),
        -timedelta(hours=23, minutes=59),
    ],
    ids=["seconds-and-microseconds", "plus-23-59", "minus-23-59"],
)
def test_odd_utc_offsets_are_stored_as_the_same_instant_in_utc(
    api_as, soc_service, champion, offset
):
    # a local time without fractional seconds: the text fits the 40-character limit
    base = dj_timezone.now().replace(microsecond=0) - timedelta(hours=1)
    instant = base - timedelta(microseconds=abs(offset).microseconds)
    text = instant.astimezone(timezone(offset)).isoformat()
    response = post(api_as(soc_service), [item(champion, i, timestamp=text) for i in range(3)])
    assert response.status_code == 201, response.content[:300]
    row = PredictionLog.objects.get(request_id="req-1")
    assert row.created_at == instant and row.created_at.utcoffset() == timedelta(0)


def test_an_odd_offset_in_a_batch_the_item_pass_checks_is_stored_too(api_as, soc_service, champion):
    instant = dj_timezone.now().replace(microsecond=0) - timedelta(hours=1)
    text = instant.astimezone(timezone(timedelta(hours=23, minutes=59))).isoformat()
    items = [item(champion, 0, timestamp=text), item(champion, 1, attributes={"a": "b"})]
    items[1]["features"]["auth_method"] = "sso"  # a level name: the item-by-item pass
    response = post(api_as(soc_service), items)
    assert response.status_code == 201, response.content[:300]
    assert PredictionLog.objects.get(request_id="req-0").created_at == instant


# --- request_id re-sent with other content --------------------------------------------


def test_an_identical_retry_is_a_duplicate(api_as, soc_service, champion):
    client = api_as(soc_service)
    items = [item(champion, i) for i in range(3)]
    assert post(client, items).status_code == 201
    response = post(client, items)
    assert response.status_code == 201
    assert response.json() == {"received": 3, "accepted": 0, "duplicates": 3}


@pytest.mark.parametrize(
    "change",
    [{"entity": "other-host"}, {"incident_id": "INC-999"}, {"score": 0.1}],
    ids=["entity", "incident", "score"],
)
def test_a_request_id_resent_with_other_content_is_a_conflict(
    api_as, soc_service, champion, change
):
    client = api_as(soc_service)
    assert post(client, [item(champion, 0)]).status_code == 201
    stored = PredictionLog.objects.get()
    items = [item(champion, 5), item(champion, 0, **change)]
    response = post(client, items)
    assert response.status_code == 409, response.content[:300]
    (error,) = response.json()["details"]["errors"]
    assert error["index"] == 1 and error["field"] == "request_id"
    assert next(iter(change)) in error["reason"]
    assert list(PredictionLog.objects.values_list("pk", "entity", "incident_id", "score")) == [
        (stored.pk, stored.entity, stored.incident_id, stored.score)
    ]


def test_a_request_id_repeated_in_one_batch_with_other_content_is_a_conflict(
    api_as, soc_service, champion
):
    items = [item(champion, 0), item(champion, 1), item(champion, 0, score=0.2)]
    body = refused(post(api_as(soc_service), items), status=409)
    assert [(e["index"], e["field"]) for e in body["details"]["errors"]] == [(2, "request_id")]


# --- role and the traffic split ------------------------------------------------------


def test_champion_role_for_a_version_outside_the_split_is_refused(
    api_as, soc_service, champion, register
):
    register("2.0.0")
    items = [item(champion, 0), item(champion, 1, version="2.0.0", role="champion")]
    body = refused(post(api_as(soc_service), items))
    assert [(e["index"], e["field"]) for e in body["details"]["errors"]] == [(1, "role")]


@pytest.mark.parametrize("role", ["challenger", "shadow"])
def test_the_champion_cannot_be_logged_in_another_role(api_as, soc_service, champion, role):
    body = refused(post(api_as(soc_service), [item(champion, 0, role=role)]))
    assert body["details"]["errors"][0]["field"] == "role"


def test_roles_that_agree_with_the_split_are_accepted(api_as, soc_service, champion, register):
    register("2.0.0")
    items = [
        item(champion, 0, role="champion"),
        item(champion, 1, version="1.0.0", role="champion"),
        item(champion, 2, version="2.0.0", role="shadow"),
        item(champion, 3, version="2.0.0"),
    ]
    response = post(api_as(soc_service), items)
    assert response.status_code == 201, response.content[:300]
    roles = dict(PredictionLog.objects.values_list("request_id", "role"))
    assert roles == {"req-0": "champion", "req-1": "champion", "req-2": "shadow", "req-3": "shadow"}


# --- categorical codes ------------------------------------------------------------------


@pytest.mark.parametrize("code", [99, 4, -1, 1.5])
def test_a_categorical_code_outside_the_levels_is_refused(api_as, soc_service, champion, code):
    items = [item(champion, i) for i in range(3)]
    items[1]["features"]["auth_method"] = code
    body = refused(post(api_as(soc_service), items))
    (error,) = body["details"]["errors"]
    assert (error["index"], error["field"]) == (1, "features.auth_method")
    assert "level" in error["reason"]


# --- the true count of a batch with many errors ------------------------------------------


def test_a_batch_of_ten_thousand_bad_items_gives_the_true_count(api_as, soc_service, champion):
    items = [item(champion, i, score=2.0) for i in range(10_000)]
    body = refused(post(api_as(soc_service), items))
    assert body["error"].startswith("10000 of 10000 predictions are invalid")
    details = body["details"]
    assert details["invalid_items"] == 10_000 and details["error_count"] == 10_000
    assert len(details["errors"]) == details["errors_shown_max"] == 1000
    assert details["errors"][0] == {"index": 0, "field": "score", "reason": "must be within [0, 1]"}


def test_a_row_beyond_float32_logged_earlier_is_a_409_not_a_500(
    champion, trained, analyst, soc_service, api_as
):
    from django.test import Client

    from tests import factories

    x = trained.X_valid[:1].astype("float64").copy()
    x[0, 1] = 1e300
    factories.predictions_log(
        champion, [{"request_id": "old-1", "incident_id": "OLD-1", "features": x[0], "score": 0.9}]
    )
    page = Client()
    page.force_login(analyst)
    response = page.get("/explain/incidents/OLD-1/")
    assert response.status_code == 409 and b"float32" in response.content
    response = api_as(soc_service).get("/api/ml/explain/OLD-1")
    assert response.status_code == 409 and "float32" in response.json()["error"]
