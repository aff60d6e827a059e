"""Hostile input against every write endpoint and the main filtered lists (DESIGN.md 7).

Each hostile request must get a clear 4xx (on the API a JSON body naming the problem)
and store nothing: the rows of the governance tables, the state of the seeded objects
and the files of the artifact store are compared before and after. Lists fed SQL-like
or odd filter values must answer 200 without the seeded rows (the value is taken
literally) or a 4xx, never a 500.
"""

import io
import json
import pickle

import numpy as np
import pytest
from django.db import connection
from django.urls import reverse
from django.utils.http import urlencode

from tests.world import client_for, seeded_world

pytestmark = pytest.mark.django_db

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory, trained):
    yield from seeded_world(django_db_blocker, tmp_path_factory, trained)


def snapshot(world) -> dict:
    """Row counts and object states that a refused request must leave as they were."""
    from core.models import AuditEvent, Notification
    from fairness.models import FairnessAudit
    from monitoring.models import Alert, DriftRun, FeedbackEvent, PredictionLog
    from registry.models import (
        ApprovalDecision,
        ApprovalRequest,
        Experiment,
        MLModel,
        MLModelVersion,
        TrafficSplit,
    )

    tracked = (
        MLModel, MLModelVersion, ApprovalRequest, ApprovalDecision, AuditEvent, Notification,
        TrafficSplit, Experiment, PredictionLog, FeedbackEvent, Alert, DriftRun, FairnessAudit,
    )  # fmt: skip
    root = world.artifact_root
    return {
        "rows": {m._meta.label: m.objects.count() for m in tracked},
        "versions": list(MLModelVersion.objects.values_list("pk", "status", "approved_at")),
        "requests": list(ApprovalRequest.objects.values_list("pk", "status")),
        "alerts": list(Alert.objects.values_list("pk", "status")),
        "labels": list(PredictionLog.objects.exclude(label=None).values_list("pk", "label")),
        "splits": list(TrafficSplit.objects.values_list("pk", "revision")),
        "files": sorted(str(p.relative_to(root)) for p in root.rglob("*")),
    }


# --- JSON write endpoints ------------------------------------------------------------


def _features(w):
    return w.extra["features"]


# endpoint: (persona, method, url, a valid body, the field the hostile value goes in)
JSON_WRITES = {
    "request-approval": ("ml", "post",
                         lambda w: reverse("api-request-approval", args=[w.testing.pk]),
                         lambda w: {"notes": "please"}, "notes"),
    "approve": ("approver", "post", lambda w: reverse("api-approve", args=[w.staged.pk]),
                lambda w: {"notes": "ok"}, "notes"),
    "reject": ("approver", "post", lambda w: reverse("api-reject", args=[w.staged.pk]),
               lambda w: {"notes": "recall too low"}, "notes"),
    "transition": ("ml", "post", lambda w: reverse("api-transition", args=[w.testing.pk]),
                   lambda w: {"to": "staging"}, "to"),
    "rollback": ("approver", "post", lambda w: reverse("api-rollback", args=[w.model.name]),
                 lambda w: {"notes": "regression"}, "notes"),
    "traffic": ("approver", "put", lambda w: reverse("api-traffic", args=[w.model.name]),
                lambda w: {"shadows": [w.staged.version], "alpha": 0.05}, "alpha"),
    "predictions": ("soc", "post", lambda w: reverse("api-predictions"),
                    lambda w: {"predictions": [{
                        "request_id": "hostile-1", "model": w.model.name, "entity": "host-1",
                        "version": w.production.version, "features": _features(w),
                        "score": 0.5}]}, "predictions.0.score"),
    "feedback": ("analyst", "post", lambda w: reverse("api-feedback"),
                 lambda w: {"verdicts": [{"incident_id": "INC-2", "label": "threat"}]},
                 "verdicts.0.label"),
    "alert-acknowledge": ("analyst", "post",
                          lambda w: reverse("api-alert-acknowledge", args=[w.alert.pk]),
                          lambda w: {"note": "looking"}, "note"),
    "alert-resolve": ("analyst", "post", lambda w: reverse("api-alert-resolve", args=[w.alert.pk]),
                      lambda w: {"note": "fixed"}, "note"),
    "drift-run": ("ml", "post", lambda w: reverse("api-drift-run", args=[w.model.name]),
                  lambda w: {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T06:00:00Z"},
                  "start"),
    "fairness-audit": ("ml", "post", lambda w: reverse("api-fairness-audits"),
                       lambda w: {"version": w.production.pk, "attributes": ["geo_region"]},
                       "version"),
}  # fmt: skip


def _put(body: dict, path: str, raw: str) -> bytes:
    """The JSON text of `body` with the value at `path` (dotted) replaced by `raw`."""
    marker = "__HOSTILE__"
    target = body
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[keys[-1]] = marker
    return json.dumps(body).replace(f'"{marker}"', raw).encode()


def _duplicate(body: dict, path: str) -> bytes:
    """The body with the object holding `path` naming that key twice (same value)."""
    value = json.dumps(_value_at(body, path))
    return _put(body, path, f'{value}, "{path.split(".")[-1]}": {value}')


def _value_at(body, path):
    for key in path.split("."):
        body = body[int(key)] if isinstance(body, list) else body[key]
    return body


HOSTILE_VALUES = {
    "nan": ("NaN", "nan"),
    "infinity": ("Infinity", "infinity"),
    "minus-infinity": ("-Infinity", "infinity"),
    "1e999": ("1e999", ""),
    "huge-integer": ("1" + "0" * 5000, ""),
    "deep-array": (DEEP.decode(), "nest"),
    "huge-string": (json.dumps("x" * (2 << 20)), ""),
    "nul": ('"a\\u0000b"', ""),
    "lone-surrogate": ('"\\ud800"', ""),
}


def _json_cases():
    for endpoint in JSON_WRITES:
        for kind in HOSTILE_VALUES:
            yield pytest.param(endpoint, kind, id=f"{endpoint}-{kind}")


def send(world, persona, method, url, data, content_type):
    client = client_for(world, persona, api=True)
    return client.generic(method.upper(), url, data, content_type=content_type)


def assert_refused_and_nothing_stored(world, before, response, *, needle="", statuses=(400,)):
    where = f"{response.status_code} {response.content[:300]!r}"
    assert response.status_code in statuses, where
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], where
    assert needle.lower() in json.dumps(body).lower(), (needle, where)
    assert snapshot(world) == before


@pytest.mark.parametrize("endpoint, kind", list(_json_cases()))
def test_hostile_json_values_are_refused(world, endpoint, kind):
    persona, method, url, body, path = JSON_WRITES[endpoint]
    raw, needle = HOSTILE_VALUES[kind]
    data = _put(body(world), path, raw)
    before = snapshot(world)
    response = send(world, persona, method, url(world), data, "application/json")
    assert_refused_and_nothing_stored(world, before, response, needle=needle)


BODIES = {
    "deep-body": (DEEP, "application/json", (400,), "nest"),
    "invalid-utf8": (b'{"notes": "\xff\xfe\xfa"}', "application/json", (400,), "utf"),
    "not-json": (b"{'notes': 'single quotes'}", "application/json", (400,), "json"),
    "empty-json": (b"", "application/json", (400,), ""),
    "json-array": (b"[]", "application/json", (400,), ""),
    "text-plain": (b'{"notes": "x"}', "text/plain", (415,), "text/plain"),
    "xml": (b"<notes>x</notes>", "application/xml", (415,), "application/xml"),
}


def _body_cases():
    for endpoint in JSON_WRITES:
        for kind in [*BODIES, "duplicate-key"]:
            if kind == "empty-json" and endpoint in {
                "request-approval", "approve", "rollback", "alert-acknowledge",
                "alert-resolve", "drift-run", "traffic",
            }:  # fmt: skip
                continue  # every field is optional there: no body is a valid request
            yield pytest.param(endpoint, kind, id=f"{endpoint}-{kind}")


@pytest.mark.parametrize("endpoint, kind", list(_body_cases()))
def test_malformed_bodies_are_refused(world, endpoint, kind):
    persona, method, url, body, path = JSON_WRITES[endpoint]
    if kind == "duplicate-key":
        data, content_type, statuses, needle = (
            _duplicate(body(world), path),
            "application/json",
            (400,),
            "duplicate",
        )
    else:
        data, content_type, statuses, needle = BODIES[kind]
    before = snapshot(world)
    response = send(world, persona, method, url(world), data, content_type)
    assert_refused_and_nothing_stored(world, before, response, needle=needle, statuses=statuses)


def test_a_valid_body_is_accepted_on_every_json_endpoint(world):
    """The hostile cases above differ from a request that works only in the hostile part."""
    from django.db import transaction

    for endpoint, (persona, method, url, body, _) in JSON_WRITES.items():
        with transaction.atomic():
            response = send(world, persona, method, url(world), json.dumps(body(world)),
                            "application/json")  # fmt: skip
            assert response.status_code < 300, (endpoint, response.content[:300])
            transaction.set_rollback(True)


VERDICT_NUL = {
    "request_id": {"request_id": "req-1.1.0-INC-1\x00", "label": "threat"},
    "incident_id": {"incident_id": "INC-1\x00", "label": "threat"},
    "note": {"incident_id": "INC-1", "label": "threat", "note": "a\x00b"},
    "surrogate": {"incident_id": "INC-1", "label": "threat", "note": "a\ud800b"},
}


@pytest.mark.parametrize("field", list(VERDICT_NUL))
def test_a_verdict_with_a_nul_is_refused(world, field):
    before = snapshot(world)
    response = send(world, "analyst", "post", reverse("api-feedback"),
                    json.dumps({"verdicts": [VERDICT_NUL[field]]}), "application/json")  # fmt: skip
    assert_refused_and_nothing_stored(world, before, response)


# --- structured bodies sent in the wrong encoding ---------------------------------------

STRUCTURED = ["traffic", "predictions", "feedback", "fairness-audit"]


@pytest.mark.parametrize("endpoint", STRUCTURED)
@pytest.mark.parametrize("encoding", ["form", "multipart"])
def test_json_sent_as_a_form_is_refused(world, endpoint, encoding):
    persona, method, url, body, _ = JSON_WRITES[endpoint]
    fields = {k: json.dumps(v) for k, v in body(world).items() if isinstance(v, list)}
    client = client_for(world, persona, api=True)
    before = snapshot(world)
    if encoding == "form":
        response = client.generic(
            method.upper(), url(world), urlencode(fields),
            content_type="application/x-www-form-urlencoded",
        )  # fmt: skip
    else:
        response = getattr(client, method)(url(world), fields, format="multipart")
    assert_refused_and_nothing_stored(world, before, response, statuses=(400, 415))


# --- oversized bodies and batches ----------------------------------------------------------


def test_a_body_over_the_upload_limit_is_refused_before_it_is_read(world, settings):
    from django.conf import settings as live

    size = live.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
    data = b'{"notes": "' + b"x" * (size - 13) + b'"}'
    assert len(data) == size
    persona, method, url, _, _ = JSON_WRITES["request-approval"]
    before = snapshot(world)
    response = send(world, persona, method, url(world), data, "application/json")
    assert_refused_and_nothing_stored(world, before, response, needle="large", statuses=(413,))


@pytest.mark.parametrize("endpoint", list(JSON_WRITES))
def test_every_json_endpoint_enforces_the_upload_limit(world, settings, endpoint):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    persona, method, url, body, path = JSON_WRITES[endpoint]
    data = _put(body(world), path, json.dumps("x" * 8192))
    before = snapshot(world)
    response = send(world, persona, method, url(world), data, "application/json")
    assert_refused_and_nothing_stored(world, before, response, needle="large", statuses=(413,))


def test_a_form_over_the_field_limit_is_refused_with_json(world):
    persona, method, url, _, _ = JSON_WRITES["request-approval"]
    data = "&".join(f"f{i}=1" for i in range(1100))
    before = snapshot(world)
    response = send(world, persona, method, url(world), data, "application/x-www-form-urlencoded")
    assert_refused_and_nothing_stored(world, before, response, needle="fields")


OVERSIZED_BATCHES = {
    "predictions": lambda w: {"predictions": [{}] * 10_001},
    "feedback": lambda w: {"verdicts": [{"incident_id": "INC-1", "label": 1}] * 1001},
    "traffic": lambda w: {"shadows": [w.staged.version] * 21},
    "fairness-audit": lambda w: {"version": w.production.pk, "attributes": ["a"] * 100},
}


@pytest.mark.parametrize("endpoint", OVERSIZED_BATCHES)
def test_oversized_batches_are_refused(world, endpoint):
    persona, method, url, _, _ = JSON_WRITES[endpoint]
    data = json.dumps(OVERSIZED_BATCHES[endpoint](world))
    before = snapshot(world)
    response = send(world, persona, method, url(world), data, "application/json")
    assert_refused_and_nothing_stored(world, before, response)


# --- model registration (multipart) --------------------------------------------------------


class Boom:
    def __reduce__(self):
        return (print, ("unpickled!",))


def _npz_with_objects() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([{"a": 1}], dtype=object))
    return buffer.getvalue()


def _multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    """A multipart body written by hand: Django's test client would send only the base
    name of a file, and the point here is what a hostile client sends."""
    boundary = "hostileboundary"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     .encode() + value.encode() + b"\r\n")  # fmt: skip
    for name, (filename, content) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def _register(world, *, artifact=None, name="model.json", metadata=None, evaluation=None,
              **fields):  # fmt: skip
    data = {
        "version": "9.9.9",
        "metadata": metadata if metadata is not None else json.dumps(world.extra["metadata"]),
        **fields,
    }
    files = {"artifact": (name, world.extra["artifact"] if artifact is None else artifact)}
    if evaluation is not None:
        files["evaluation"] = ("evaluation.npz", evaluation)
    body, boundary = _multipart(data, files)
    client = client_for(world, "ml", api=True)
    return client.generic("POST", reverse("api-versions", args=[world.model.name]), body,
                          content_type=f"multipart/form-data; boundary={boundary}")  # fmt: skip


REGISTRATIONS = {
    "pickle-named-json": (dict(artifact=pickle.dumps(Boom()), name="model.json"), "pickle"),
    "pickle-named-ubj": (dict(artifact=pickle.dumps(Boom()), name="model.ubj"), "pickle"),
    "pickle-protocol-0": (dict(artifact=pickle.dumps(Boom(), protocol=0)), "neither"),
    "json-not-a-booster": (dict(artifact=b'{"weights": [1, 2, 3]}'), "not an xgboost model"),
    "json-broken-booster": (dict(artifact=b'{"learner": {}, "version": [3, 0, 0]}'), "xgboost"),
    "deep-artifact": (dict(artifact=b'{"learner": ' + DEEP + b"}"), "nest"),
    "empty-artifact": (dict(artifact=b""), "artifact"),
    "metadata-deep": (dict(metadata=DEEP.decode()), "nest"),
    "metadata-nan": (dict(metadata='{"accuracy": NaN, "feature_schema": []}'), "nan"),
    "metadata-1e999": (dict(metadata='{"training_samples": 1e999}'), "metadata"),
    "metadata-duplicate": (dict(metadata='{"accuracy": 0.5, "accuracy": 0.9}'), "duplicate"),
    "metadata-array": (dict(metadata="[]"), "object"),
    "evaluation-pickled": (dict(evaluation=_npz_with_objects()), "pickle"),
    "metadata-nul": (dict(metadata='{"intended_use": "a\\u0000b"}'), "nul"),
    "metadata-surrogate": (dict(metadata='{"limitations": "\\ud800"}'), "surrogate"),
    "version-traversal": (dict(version="../../1.0.0"), "version"),
    "version-huge": (dict(version="1." * 100_000 + "0"), "version"),
    "description-huge": (dict(description="d" * 100_000), "description"),
}


@pytest.mark.parametrize("kind", REGISTRATIONS)
def test_hostile_registrations_are_refused(world, kind):
    fields, needle = REGISTRATIONS[kind]
    if kind == "metadata-nan":
        meta = dict(world.extra["metadata"], accuracy=float("nan"))
        fields = dict(metadata=json.dumps(meta))
    elif kind == "metadata-1e999":
        fields = dict(metadata=json.dumps(world.extra["metadata"])[:-1] + ', "auc": 1e999}')
    elif kind == "metadata-duplicate":
        text = json.dumps(world.extra["metadata"])
        fields = dict(metadata=text[:-1] + ', "accuracy": 0.99}')
    before = snapshot(world)
    response = _register(world, **fields)
    assert_refused_and_nothing_stored(world, before, response, needle=needle)


def test_an_oversized_artifact_is_refused(world, monkeypatch):
    from registry.serializers import RegisterVersionSerializer

    monkeypatch.setattr(RegisterVersionSerializer, "MAX_ARTIFACT_BYTES", 1024)
    before = snapshot(world)
    response = _register(world)
    assert_refused_and_nothing_stored(world, before, response, needle="larger than")


def test_a_metadata_field_over_the_upload_limit_is_refused_with_json(world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    before = snapshot(world)
    response = _register(world, description="d" * (100 * 1024))
    assert_refused_and_nothing_stored(world, before, response, needle="large", statuses=(413,))


def test_json_sent_to_the_multipart_registration_is_refused(world):
    before = snapshot(world)
    client = client_for(world, "ml", api=True)
    response = client.post(
        reverse("api-versions", args=[world.model.name]),
        {"version": "9.9.9", "metadata": world.extra["metadata"]},
        format="json",
    )
    assert_refused_and_nothing_stored(world, before, response, statuses=(415,))


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "..\\..\\model.json", "model\x00.json", "ü/.."]
)
def test_the_uploaded_file_name_never_reaches_the_file_system(world, name):
    """The store is content-addressed: whatever the client calls the file, a valid
    booster lands at <sha[:2]>/<sha>.json under the store and nowhere else (or, for a
    name with nothing left after its last separator, the upload is refused whole)."""
    from registry.artifacts import artifact_relpath, sha256_bytes

    artifact = _fresh_artifact(world)
    root = world.artifact_root
    outside = sorted(p.name for p in root.parent.iterdir())
    before = snapshot(world)
    response = _register(world, name=name, artifact=artifact)
    if response.status_code != 201:
        assert_refused_and_nothing_stored(world, before, response)
        return
    version = world.model.versions.get(version="9.9.9")
    assert version.model_path == artifact_relpath(sha256_bytes(artifact), ".json")
    assert (root / version.model_path).read_bytes() == artifact
    added = set(snapshot(world)["files"]) - set(before["files"])
    assert {f for f in added if (root / f).is_file()} == {version.model_path}
    assert sorted(p.name for p in root.parent.iterdir()) == outside


_fresh = iter(range(1, 1000))


def _fresh_artifact(world) -> bytes:
    """The seeded booster written with other whitespace: a valid file the store does not
    hold yet (the store is on disk, outside the rolled-back transaction)."""
    return json.dumps(json.loads(world.extra["artifact"]), indent=next(_fresh)).encode()


@pytest.mark.parametrize(
    "fields, status",
    [({"version": "1.1.0"}, 409), ({"metadata": "parent"}, 400)],
    ids=["version-taken", "unknown-parent"],
)
def test_a_registration_refused_by_the_registry_leaves_no_file(world, fields, status):
    if fields.get("metadata") == "parent":
        fields = {"metadata": json.dumps({**world.extra["metadata"], "parent": "7.7.7"})}
    before = snapshot(world)
    response = _register(world, artifact=_fresh_artifact(world), **fields)
    assert_refused_and_nothing_stored(world, before, response, statuses=(status,))


@pytest.mark.parametrize("name", ["../../etc/passwd", "/tmp/x.json", "model\x00.json"])
def test_a_pickle_with_a_hostile_name_is_refused(world, name):
    before = snapshot(world)
    response = _register(world, artifact=pickle.dumps(Boom()), name=name)
    assert_refused_and_nothing_stored(world, before, response, needle="pickle")


# --- pages that write --------------------------------------------------------------------

PAGE_WRITES = {
    "verdict": ("analyst", lambda w: reverse("explain:verdict", args=[w.incident]),
                {"verdict": "threat", "note": "x"}, "note"),
    "alert-resolve": ("analyst", lambda w: reverse("monitoring:alert-resolve", args=[w.alert.pk]),
                      {"note": "x"}, "note"),
    "fairness-run": ("ml", lambda w: reverse("fairness:run", args=[w.production.pk]),
                     {"source": "evaluation", "attributes": "geo_region"}, "attributes"),
    "admin-decide": ("approver", lambda w: reverse("admin:registry_approvalrequest_decide",
                                                   args=[w.pending.pk]),
                     {"decision": "reject", "notes": "x"}, "notes"),
    "admin-lifecycle": ("approver", lambda w: reverse("admin:registry_mlmodelversion_lifecycle",
                                                      args=[w.staged.pk, "archive"]),
                        {"notes": "x"}, "notes"),
}  # fmt: skip
PAGE_VALUES = {
    "nul": "a\x00b",
    "huge": "h" * (3 << 20),
    "sql": "'; DROP TABLE ml_model_versions; --",
}


@pytest.mark.parametrize("value", PAGE_VALUES)
@pytest.mark.parametrize("page", PAGE_WRITES)
def test_page_forms_with_hostile_values(world, page, value):
    """A NUL is refused (the database cannot store it) and nothing is written; other odd
    text is stored literally, cut to the field's length, or refused; never a 500."""
    persona, url, data, field = PAGE_WRITES[page]
    client = client_for(world, persona, api=False)
    before = snapshot(world)
    response = client.post(url(world), {**data, field: PAGE_VALUES[value]})
    assert response.status_code < 500, response.content[:300]
    if value == "nul":
        assert response.status_code == 400 or (
            response.status_code == 302 and snapshot(world) == before
        ), (response.status_code, response.content[:300])
        assert snapshot(world) == before


# --- filtered lists ------------------------------------------------------------------------

ODD_VALUES = {
    "sql-or": "' OR 1=1 --",
    "sql-union": "x' UNION SELECT username FROM auth_user --",
    "percent": "%",
    "underscore": "_",
    "unicode": "ᚠ𝔘ñ\u202e",
    "nul": "a\x00b",
    "superscript-digit": "²",
    "arabic-digits": "١٢",
    "huge-number": "9" * 40,
    "impossible-date": "2026-02-30",
    "impossible-datetime": "2026-02-30T10:00:00",
    "long": "l" * 100_000,
    "nan": "nan",
    "infinity": "inf",
}

# (persona, URL name and kwargs, the query parameters to fill)
LISTS = {
    "api-alerts": ("analyst", "api-alerts", {}, ["status", "severity", "model", "kind"]),
    "api-drift": ("analyst", "api-drift", {"name": "threat"}, ["version", "start", "end"]),
    "api-performance": ("analyst", "api-performance", {"name": "threat"}, ["version"]),
    "api-fairness-audits": ("auditor", "api-fairness-audits", {}, ["version"]),
    "api-route": ("soc", "api-route", {"name": "threat"}, ["entity"]),
    "api-explain": ("soc", "explain-incident", {"incident_id": "INC-1"},
                    ["version", "model", "top_k"]),
    "explain-index": ("analyst", "explain:index", {},
                      ["model", "version", "score_min", "score_max", "start", "end", "verdict",
                       "page"]),
    "explain-incident": ("analyst", "explain:incident", {"incident_id": "INC-1"},
                         ["version", "top"]),
    "explain-compare": ("analyst", "explain:compare", {"incident_id": "INC-1"}, ["a", "b"]),
    "registry-audit": ("auditor", "registry:audit", {}, ["start", "end", "model", "page"]),
    "registry-audit-export": ("auditor", "registry:audit-export", {},
                              ["start", "end", "model", "format"]),
    "monitoring-dashboard": ("analyst", "monitoring:dashboard", {"name": "threat"},
                             ["version", "feature", "window"]),
}  # fmt: skip
# The seeded rows a list shows unfiltered; an odd filter value must not bring them all back.
SEEDED_MARK = {"api-alerts": "bytes_out drifted", "explain-index": "INC-1"}


def _list_cases():
    for name, (_, _, _, params) in LISTS.items():
        for param in params:
            for value in ODD_VALUES:
                yield pytest.param(name, param, value, id=f"{name}-{param}-{value}")


@pytest.mark.parametrize("name, param, value", list(_list_cases()))
def test_lists_take_odd_filter_values_literally(world, name, param, value):
    persona, url_name, kwargs, _ = LISTS[name]
    api = url_name.split(":")[0] not in ("explain", "registry", "monitoring")
    client = client_for(world, persona, api=api)
    url = reverse(url_name, kwargs=kwargs) + "?" + urlencode({param: ODD_VALUES[value]})
    response = client.get(url)
    status = response.status_code
    assert status in (200, 400, 404), (status, response.content[:300])
    if api and status != 200:
        assert response.json()["error"]
    mark = SEEDED_MARK.get(name)
    filters_rows = param in ("model", "kind", "version", "status", "severity")
    if status == 200 and mark and filters_rows:
        assert mark not in response.content.decode(), "the filter matched everything"


def test_the_lists_show_the_seeded_rows_without_a_filter(world):
    """SEEDED_MARK is what the unfiltered lists show (else the check above proves nothing)."""
    for name, mark in SEEDED_MARK.items():
        persona, url_name, kwargs, _ = LISTS[name]
        client = client_for(world, persona, api=name.startswith("api"))
        response = client.get(reverse(url_name, kwargs=kwargs))
        assert response.status_code == 200 and mark in response.content.decode(), name


@pytest.mark.parametrize(
    "url",
    [
        "/api/ml/explain/INC%00-1",
        "/explain/incidents/INC%00-1/",
        "/explain/incidents/INC%00-1/compare/",
        "/api/v1/models/threat/route/?entity=host%00",
    ],
)
def test_nul_in_the_path_or_query_is_not_a_server_error(world, url):
    client = client_for(world, "soc" if url.startswith("/api") else "analyst", api=True)
    client_page = client_for(world, "analyst", api=False)
    response = (client if url.startswith("/api") else client_page).get(url)
    assert response.status_code in (400, 404), (response.status_code, response.content[:200])
    if connection.vendor and url.startswith("/api"):
        assert response.json()["error"]


# --- values beyond float32, formulas in exports ----------------------------------------


def test_an_evaluation_set_beyond_float32_is_refused_naming_the_row(world):
    X = np.tile(np.asarray(list(world.extra["features"].values())), (5, 1))
    X[3, 1] = 1e300
    buffer = io.BytesIO()
    np.savez(buffer, X=X)
    before = snapshot(world)
    response = _register(world, evaluation=buffer.getvalue())
    assert_refused_and_nothing_stored(world, before, response, needle="float32")
    assert response.json()["details"]["row"] == 3


FORMULA = '=HYPERLINK("https://evil.example/login","card")'


def _csv_cells(response) -> list[str]:
    import csv

    assert response.status_code == 200, response.content[:300]
    return [cell for row in csv.reader(io.StringIO(response.content.decode())) for cell in row]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_the_compliance_report_csv_neutralises_formulas(world, start):
    version = world.production
    version.intended_use = start + FORMULA[1:]
    version.save(update_fields=["intended_use"])
    client = client_for(world, "auditor", api=False)
    cells = _csv_cells(client.get(reverse("fairness:report-export", args=[version.pk, "csv"])))
    assert "'" + start + FORMULA[1:] in cells
    assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in cells)


def test_the_audit_trail_csv_neutralises_formulas(world):
    from core.audit import audit_record

    audit_record(action=FORMULA, model_name="@SUM(A1:A9)")
    client = client_for(world, "auditor", api=False)
    cells = _csv_cells(client.get(reverse("registry:audit-export") + "?format=csv"))
    assert "'" + FORMULA in cells and "'@SUM(A1:A9)" in cells
    assert not any(cell.startswith(("=", "+", "@", "\t", "\r")) for cell in cells)


# --- create_account ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password", ["a", "password123", "w_newbie"], ids=["short", "common", "username"]
)
def test_create_account_refuses_a_weak_password(world, monkeypatch, password):
    from django.contrib.auth import get_user_model
    from django.core.management import CommandError, call_command

    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    with pytest.raises(CommandError, match="password refused"):
        call_command("create_account", "w_newbie", "--role", "Analyst", "--password-stdin")
    assert not get_user_model().objects.filter(username="w_newbie").exists()


def test_create_account_reads_the_password_from_stdin_or_a_prompt(world, monkeypatch):
    from django.contrib.auth import get_user_model
    from django.core.management import CommandError, call_command

    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery staple\n"))
    call_command("create_account", "w_piped", "--role", "Analyst", "--password-stdin")
    assert (
        get_user_model()
        .objects.get(username="w_piped")
        .check_password("correct horse battery staple")
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: no prompt
    with pytest.raises(CommandError, match="password-stdin"):
        call_command("create_account", "w_prompted", "--role", "Analyst")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    answers = iter(["another long passphrase", "another long passphrase"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    call_command("create_account", "w_prompted", "--role", "Analyst")
    assert (
        get_user_model()
        .objects.get(username="w_prompted")
        .check_password("another long passphrase")
    )


# --- /metrics behind a reverse proxy --------------------------------------------------------


def test_metrics_behind_a_proxy_on_the_same_host_checks_the_forwarded_address(
    world, client, settings
):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.PROXY_COUNT = 1
    through_proxy = {"REMOTE_ADDR": "127.0.0.1"}
    outside = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9", **through_proxy)
    assert outside.status_code == 403
    forged = "127.0.0.1, 203.0.113.9"  # the client's own entry comes first: not trusted
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR=forged, **through_proxy).status_code == 403
    inside = client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1", **through_proxy)
    assert inside.status_code == 200
    settings.PROXY_COUNT = 2
    assert (
        client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1", **through_proxy).status_code == 403
    )
