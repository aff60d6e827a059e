import copy
import threading

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring.models import FeedbackEvent, PredictionLog
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
        "attributes": {"geo_region": "EU"},
        "timestamp": "2026-11-20T10:00:00+00:00",
    }
    body.update(overrides)
    return body


def post(client, items):
    return client.post("/api/v1/predictions/", {"predictions": items}, format="json")


def test_a_valid_batch_is_stored_with_features_aligned_to_the_schema(api_as, soc_service, champion):
    items = [item(champion, i, score=0.1 * (i % 10)) for i in range(50)]
    response = post(api_as(soc_service), items)
    assert response.status_code == 201, response.content
    assert response.json() == {"received": 50, "accepted": 50, "duplicates": 0}
    row = PredictionLog.objects.get(request_id="req-7")
    assert row.version == champion and row.role == "champion"
    expected = [items[7]["features"][n] for n in champion.feature_names]
    np.testing.assert_array_equal(row.feature_vector(), expected)
    assert row.decision == (0.7 >= champion.decision_threshold)
    assert row.attributes == {"geo_region": "EU"}
    assert row.created_at.isoformat() == "2026-11-20T10:00:00+00:00"


BAD_ITEMS = [
    ({"features": "nope"}, "features", "must be an object"),
    ({"score": 1.5}, "score", "within [0, 1]"),
    ({"score": "high"}, "score", "must be a number"),
    ({"model": "ghost"}, "model", "unknown model"),
    ({"version": "9.9.9"}, "version", "unknown version"),
    ({"timestamp": "yesterday"}, "timestamp", "ISO 8601"),
    ({"timestamp": "2026-11-20T10:00:00"}, "timestamp", "UTC offset"),
    ({"timestamp": "2099-01-01T00:00:00+00:00"}, "timestamp", "outside"),
    ({"entity": "x" * 300}, "entity", "longer than"),
    ({"request_id": ""}, "request_id", "non-empty"),
    ({"surprise": 1}, "surprise", "unknown field"),
    ({"attributes": {"geo_region": "E" * 100}}, "attributes.geo_region", "at most"),
    ({"role": "boss"}, "role", "must be one of"),
]


@pytest.mark.parametrize("change, field, reason", BAD_ITEMS)
def test_each_bad_item_rejects_the_whole_batch_naming_index_and_field(
    api_as, soc_service, champion, change, field, reason
):
    items = [item(champion, i) for i in range(5)]
    items[3].update(change)
    response = post(api_as(soc_service), items)
    assert response.status_code == 400
    errors = response.json()["details"]["errors"]
    assert any(e["index"] == 3 and e["field"] == field and reason in e["reason"] for e in errors), (
        errors
    )
    assert PredictionLog.objects.count() == 0


@pytest.mark.parametrize(
    "mutate, field, reason",
    [
        (lambda f: f.pop("bytes_out"), "features.bytes_out", "missing feature"),
        (lambda f: f.update(extra=1.0), "features.extra", "unknown feature"),
        (lambda f: f.update(bytes_out="lots"), "features.bytes_out", "must be a number"),
        (lambda f: f.update(auth_method="telepathy"), "features.auth_method", "unknown level"),
    ],
)
def test_feature_errors_are_reported_per_feature(
    api_as, soc_service, champion, mutate, field, reason
):
    items = [item(champion, i) for i in range(3)]
    mutate(items[1]["features"])
    response = post(api_as(soc_service), items)
    assert response.status_code == 400
    assert {"index": 1, "field": field} in [
        {"index": e["index"], "field": e["field"]}
        for e in response.json()["details"]["errors"]
        if reason in e["reason"]
    ]
    assert PredictionLog.objects.count() == 0


def test_non_finite_numbers_are_rejected(api_as, soc_service, champion):
    body = '{"predictions": [%s]}'
    import json

    good = json.dumps(item(champion, 0))
    bad = json.dumps(item(champion, 1)).replace('"bytes_out": 1.0', '"bytes_out": 1e999')
    client = api_as(soc_service)
    response = client.post(
        "/api/v1/predictions/", body % f"{good}, {bad}", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["details"]["errors"][0]["field"] == "features.bytes_out"
    nan = good.replace('"score": 0.8', '"score": NaN')
    response = client.post("/api/v1/predictions/", body % nan, content_type="application/json")
    assert response.status_code == 400
    assert PredictionLog.objects.count() == 0


@pytest.mark.parametrize(
    "old, new, field, reason",
    [
        # valid JSON that no float can hold, and text that the database cannot store
        ('"bytes_out": 1.0', '"bytes_out": ' + "9" * 400, "features.bytes_out", "finite"),
        ('"score": 0.8', '"score": ' + "9" * 400, "score", "within [0, 1]"),
        ('"request_id": "req-1"', '"request_id": "req\\u0000-1"', "request_id", "NUL"),
        ('"entity": "host-1"', '"entity": "host-\\ud800"', "entity", "unpaired surrogate"),
        ('"geo_region": "EU"', '"geo_region": "E\\u0000U"', "attributes.geo_region", "NUL"),
    ],
)
def test_unstorable_values_are_rejected_per_item(
    api_as, soc_service, champion, old, new, field, reason
):
    import json

    good, bad = json.dumps(item(champion, 0)), json.dumps(item(champion, 1))
    assert old in bad
    body = '{"predictions": [' + good + ", " + bad.replace(old, new) + "]}"
    response = api_as(soc_service).post(
        "/api/v1/predictions/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    errors = response.json()["details"]["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, field)], errors
    assert reason in errors[0]["reason"]
    assert PredictionLog.objects.count() == 0


def test_only_json_bodies_are_accepted(api_as, soc_service, champion):
    client = api_as(soc_service)
    response = client.post("/api/v1/predictions/", {"predictions": "x"}, format="multipart")
    assert response.status_code == 415
    assert PredictionLog.objects.count() == 0


def test_categorical_levels_are_accepted_by_name(api_as, soc_service, champion):
    one = item(champion, 0)
    one["features"]["auth_method"] = "mfa"
    assert post(api_as(soc_service), [one]).status_code == 201
    row = PredictionLog.objects.get()
    index = champion.feature_names.index("auth_method")
    assert row.feature_vector()[index] == 2.0


def test_batch_size_limits(api_as, soc_service, champion):
    client = api_as(soc_service)
    assert post(client, []).status_code == 400
    response = post(client, [item(champion, 0)] * 10_001)
    assert response.status_code == 400 and "1 to 10000" in response.json()["error"]


def test_retries_are_idempotent(api_as, soc_service, champion):
    client = api_as(soc_service)
    items = [item(champion, i) for i in range(20)]
    assert post(client, items).json()["accepted"] == 20
    again = post(client, items[10:] + [item(champion, 99)])
    assert again.json() == {"received": 11, "accepted": 1, "duplicates": 10}
    within = post(client, [item(champion, 200), item(champion, 200)])
    assert within.json() == {"received": 2, "accepted": 1, "duplicates": 1}
    assert PredictionLog.objects.count() == 22


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_the_same_ids_store_each_once(api_as, soc_service, champion):
    items = [item(champion, i) for i in range(300)]
    clients = [api_as(soc_service) for _ in range(4)]
    results = []
    barrier = threading.Barrier(4)

    def send(client):
        barrier.wait()
        try:
            results.append(post(client, copy.deepcopy(items)).json())
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert PredictionLog.objects.count() == 300
    assert sum(r["accepted"] for r in results) == 300
    assert sum(r["duplicates"] for r in results) == 900


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_sharing_ids_in_opposite_orders_store_each_once(
    api_as, soc_service, champion
):
    """Two batches holding the same request_ids in opposite orders lock the unique index
    in opposite orders; the database breaks that deadlock by failing one COPY, which must
    still end as a 201 that counts the rows it did not store as duplicates."""
    if connection.vendor != "postgresql":
        pytest.skip("the unique-index deadlock is PostgreSQL's")
    items = [item(champion, i) for i in range(6000)]
    batches = [items, items[::-1]] * 2
    results, barrier = [], threading.Barrier(len(batches))

    def send(batch):
        client = api_as(soc_service)
        barrier.wait()
        results.append(post(client, batch))

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [201] * len(batches), [
        r.content[:200] for r in results
    ]
    assert sum(r.json()["accepted"] for r in results) == 6000
    assert PredictionLog.objects.count() == 6000


def test_without_a_version_items_go_to_the_production_version(
    api_as, soc_service, champion, register
):
    register("2.0.0")
    post(api_as(soc_service), [item(champion, 0)])
    assert PredictionLog.objects.get().version == champion


def test_a_named_non_production_version_is_logged_as_shadow(
    api_as, soc_service, champion, register
):
    other = register("2.0.0")
    post(api_as(soc_service), [item(champion, 0, version="2.0.0")])
    row = PredictionLog.objects.get()
    assert row.version == other and row.role == "shadow"


@pytest.mark.parametrize(
    "role, allowed",
    [
        ("soc_service", True),
        ("ml_engineer", True),
        ("analyst", False),
        ("auditor", False),
        ("approver", False),
    ],
)
def test_who_may_log_predictions(api_as, request, champion, role, allowed):
    response = post(api_as(request.getfixturevalue(role)), [item(champion, 0)])
    assert response.status_code == (201 if allowed else 403)


def test_feedback_by_request_id_and_incident_id_with_history(
    api_as, analyst, soc_service, champion
):
    post(api_as(soc_service), [item(champion, i) for i in range(3)])
    client = api_as(analyst)
    response = client.post(
        "/api/v1/feedback/",
        {
            "verdicts": [
                {"request_id": "req-0", "label": "threat"},
                {"incident_id": "INC-1", "label": "false_positive", "note": "admin script"},
                {"request_id": "req-404", "label": 1},
            ]
        },
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["recorded"] == 2 and body["unknown"] == 1
    assert body["results"][2] == {"index": 2, "status": "unknown", "predictions": 0}
    row = PredictionLog.objects.get(request_id="req-1")
    assert row.label == 0 and row.labelled_by == analyst and row.labelled_at is not None
    client.post(
        "/api/v1/feedback/",
        {"verdicts": [{"request_id": "req-1", "label": "threat"}]},
        format="json",
    )
    history = list(
        FeedbackEvent.objects.filter(prediction__request_id="req-1").values_list(
            "label", "previous_label"
        )
    )
    assert history == [(0, None), (1, 0)]
    assert PredictionLog.objects.get(request_id="req-1").label == 1


def test_bad_feedback_records_nothing(api_as, analyst, soc_service, champion):
    post(api_as(soc_service), [item(champion, 0)])
    response = api_as(analyst).post(
        "/api/v1/feedback/",
        {
            "verdicts": [
                {"request_id": "req-0", "label": "threat"},
                {"request_id": "req-0", "label": "maybe"},
            ]
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["details"]["errors"][0]["field"] == "label"
    assert FeedbackEvent.objects.count() == 0


def _verdicts(n):
    """n verdicts: by request_id and by incident_id in turn, every fifth one unknown."""
    return [
        {
            "request_id" if i % 2 else "incident_id": f"{'req' if i % 2 else 'INC'}-{i}"
            + ("-404" if i % 5 == 4 else ""),
            "label": ["threat", "benign"][i % 2],
        }
        for i in range(n)
    ]


def test_a_feedback_batch_takes_as_many_queries_for_50_verdicts_as_for_5(
    api_as, analyst, soc_service, champion
):
    post(api_as(soc_service), [item(champion, i) for i in range(50)])
    client = api_as(analyst)
    counts = {}
    for n in (5, 50):
        with CaptureQueriesContext(connection) as queries:
            response = client.post("/api/v1/feedback/", {"verdicts": _verdicts(n)}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["recorded"] == n - n // 5
        counts[n] = len(queries)
    assert counts[50] <= counts[5], counts
    assert FeedbackEvent.objects.count() == 4 + 40


def test_verdicts_on_one_prediction_in_one_batch_apply_in_order(
    api_as, analyst, soc_service, champion
):
    post(api_as(soc_service), [item(champion, i) for i in range(2)])
    response = api_as(analyst).post(
        "/api/v1/feedback/",
        {
            "verdicts": [
                {"request_id": "req-0", "label": "threat"},
                {"incident_id": "INC-0", "label": "benign", "note": "admin script"},
                {"request_id": "req-0", "label": 1},
                {"incident_id": "INC-1", "label": 0},
            ]
        },
        format="json",
    )
    assert response.status_code == 200
    assert response.json() == {
        "recorded": 4,
        "unknown": 0,
        "results": [{"index": i, "status": "recorded", "predictions": 1} for i in range(4)],
    }
    history = list(
        FeedbackEvent.objects.filter(prediction__request_id="req-0")
        .order_by("pk")
        .values_list("label", "previous_label", "note", "user")
    )
    assert history == [
        (1, None, "", analyst.pk),
        (0, 1, "admin script", analyst.pk),
        (1, 0, "", analyst.pk),
    ]
    labels = dict(PredictionLog.objects.values_list("request_id", "label"))
    assert labels == {"req-0": 1, "req-1": 0}
    assert not PredictionLog.objects.filter(labelled_by__isnull=True).exists()


@pytest.mark.parametrize(
    "role, allowed",
    [
        ("analyst", True),
        ("soc_service", True),
        ("ml_engineer", False),
        ("auditor", False),
    ],
)
def test_who_may_give_feedback(api_as, request, role, allowed):
    response = api_as(request.getfixturevalue(role)).post(
        "/api/v1/feedback/", {"verdicts": [{"request_id": "x", "label": 1}]}, format="json"
    )
    assert response.status_code == (200 if allowed else 403)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": {"c": [1, {"d": 2}]}}',
        '{"k:ey": ":", "x": "\\":", "y\\\\": "\\\\\\":"}',
        '[":", {"q\\"": "::"}, "\\\\"]',
        '{"a": 1, "a": 2}',
        "[]",
    ],
)
def test_names_in_counts_object_names_outside_strings(text):
    import json

    from monitoring.api_ingest import _names_in

    names = []
    json.loads(text, object_pairs_hook=lambda pairs: names.extend(pairs) or {})
    assert _names_in(text.encode()) == len(names)


def test_every_verdict_is_an_audit_event_with_old_new_and_note(api_as, soc_service, register):
    from core.audit import audit_verify
    from core.models import AuditEvent
    from tests import factories

    version = register()
    row = factories.prediction_log(version, request_id="r-audit", incident_id="INC-A")
    client = api_as(soc_service)
    for label, note in (("benign", "looked like a backup job"), ("threat", "exfil confirmed")):
        response = client.post(
            "/api/v1/feedback/",
            {"verdicts": [{"request_id": "r-audit", "label": label, "note": note}]},
            format="json",
        )
        assert response.status_code == 200, response.json()
    events = list(AuditEvent.objects.filter(object_type="PredictionLog", object_id=str(row.pk)))
    assert [(e.action, e.payload["old"], e.payload["new"], e.payload["note"]) for e in events] == [
        ("verdict.recorded", None, "benign", "looked like a backup job"),
        ("verdict.changed", "benign", "threat", "exfil confirmed"),
    ]
    assert {e.actor_label for e in events} == {soc_service.username}
    assert events[0].model_name == version.model.name
    assert audit_verify().ok
