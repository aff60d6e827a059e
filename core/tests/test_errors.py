"""One domain error, mapped once.

A service refuses by raising a ``core.errors.DomainError`` subclass; the API's exception
handler (``core.api.exception_handler``) answers it with the error's status and the
documented body ``{"error": ..., "details": {...}}``. No API view catches one.
"""

import ast
import importlib
import inspect
import json

import pytest
from django.test import Client

from core.errors import DomainError
from explain.selectors import IncidentNotFound
from explain.services import ExplainInputError, ExplanationFailed
from fairness.models import AuditImmutableError
from fairness.services import AuditInputError
from monitoring.ingest import IngestError
from registry.artifacts import ArtifactIntegrityError
from registry.errors import GovernanceError
from registry.models import MLModel
from registry.routing import NoServingVersion
from registry.training import ArtifactFormatError

pytestmark = pytest.mark.django_db

API_MODULES = [
    "registry.api",
    "monitoring.api_drift",
    "monitoring.api_ingest",
    "explain.api",
    "fairness.api",
]


@pytest.fixture(scope="module")
def documented(django_db_blocker):
    """documented(path, method) -> the statuses the served OpenAPI schema lists."""
    with django_db_blocker.unblock():
        response = Client(HTTP_HOST="localhost").get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    paths = json.loads(response.content)["paths"]
    return lambda path, method: set(paths[path][method]["responses"])


def assert_error(response, status: int, error: str, details: dict) -> None:
    assert response.status_code == status, response.content
    assert response.json() == {"error": error, "details": details}


@pytest.mark.parametrize(
    "cls, status",
    [
        (GovernanceError, 400),
        (IngestError, 400),
        (AuditInputError, 400),
        (ArtifactFormatError, 400),
        (IncidentNotFound, 404),
        (AuditImmutableError, 409),
        (NoServingVersion, 409),
        (ArtifactIntegrityError, 409),
        (ExplainInputError, 409),
        (ExplanationFailed, 500),
    ],
)
def test_every_domain_error_is_a_domain_error_with_its_status(cls, status):
    assert issubclass(cls, DomainError)
    assert cls.status == status


def test_errors_keep_the_builtin_bases_callers_catch():
    assert issubclass(ArtifactFormatError, ValueError)
    assert issubclass(IncidentNotFound, LookupError)
    assert ArtifactFormatError("bad bytes").details == {"field": "artifact"}
    integrity = ArtifactIntegrityError("altered", expected="a" * 64, actual=None)
    assert integrity.details == {"expected_sha256": "a" * 64, "actual_sha256": ""}


def _resolve(node, namespace: dict):
    """The object an except clause names (``Name`` or ``module.Name``), else None."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        return getattr(_resolve(node.value, namespace), node.attr, None)
    return None


@pytest.mark.parametrize("module", API_MODULES)
def test_no_api_view_catches_a_domain_error(module):
    """The exception handler maps them; a per-view try block would be a second mapping."""
    mod = importlib.import_module(module)
    caught = []
    for node in ast.walk(ast.parse(inspect.getsource(mod))):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            names = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            for name in names:
                cls = _resolve(name, vars(mod))
                if isinstance(cls, type) and issubclass(cls, DomainError):
                    caught.append(f"{module}:{node.lineno} catches {cls.__name__}")
    assert caught == []


# --- through the real API: one error of each app -----------------------------------


def test_monitoring_an_ingest_error_is_the_documented_400(api_as, soc_service, documented):
    response = api_as(soc_service).post(
        "/api/v1/predictions/", {"predictions": "nope"}, format="json"
    )
    assert_error(
        response,
        400,
        "predictions must be a list",
        {"errors": [{"index": None, "field": "predictions", "reason": "must be a list"}]},
    )
    assert "400" in documented("/api/v1/predictions/", "post")


def test_explain_an_unknown_incident_is_the_documented_404(api_as, soc_service, documented):
    response = api_as(soc_service).get("/api/ml/explain/INC-NONE")
    assert_error(
        response,
        404,
        "no prediction is logged for incident 'INC-NONE'",
        {"incident_id": "INC-NONE"},
    )
    assert "404" in documented("/api/ml/explain/{incident_id}", "get")


def test_registry_no_serving_version_is_the_documented_409(api_as, soc_service, documented):
    MLModel.objects.create(name="idle")
    response = api_as(soc_service).get("/api/v1/models/idle/route/", {"entity": "host-1"})
    assert_error(response, 409, "idle has no production version", {"model": "idle"})
    assert "409" in documented("/api/v1/models/{name}/route/", "get")


def test_registry_a_governance_refusal_is_the_documented_409(api_as, approver, documented):
    MLModel.objects.create(name="idle")
    response = api_as(approver).post("/api/v1/models/idle/rollback/", {}, format="json")
    assert_error(response, 409, "idle has no production version to roll back", {})
    assert "409" in documented("/api/v1/models/{name}/rollback/", "post")


def test_fairness_an_audit_input_error_is_the_documented_400(
    api_as, ml_engineer, register, documented
):
    version = register("1.0.0")
    response = api_as(ml_engineer).post(
        "/api/v1/fairness/audits/",
        {"version": version.pk, "attributes": ["geo_region", "1st"]},
        format="json",
    )
    assert_error(
        response,
        400,
        "attribute names are identifiers (letters, digits, underscore)",
        {"field": "attributes[1]"},
    )
    assert "400" in documented("/api/v1/fairness/audits/", "post")
