import json
import os
import secrets
import subprocess
import sys

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from core.env import ConfigError, env_bool, env_int
from core.roles import ALL_ROLES, ROLE_PERMISSIONS

pytestmark = pytest.mark.django_db


def test_every_role_exists_with_exactly_its_permissions():
    for role in ALL_ROLES:
        group = Group.objects.get(name=role)
        held = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        assert held == set(ROLE_PERMISSIONS[role])


def test_only_approvers_may_approve():
    holders = {g.name for g in Group.objects.filter(permissions__codename="approve_version")}
    assert holders == {"Approver"}


def test_service_token_authenticates(soc_service, api_as):
    response = api_as(soc_service).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json() == {"username": "soc_backend", "roles": ["SOC service"]}


def test_wrong_token_gets_401_in_the_error_shape(api_as):
    client = api_as(None)
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 64)
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error", "details"}
    assert "token" in body["error"].lower()
    assert response["WWW-Authenticate"] == "Token"


def test_missing_credentials_get_401(api_as):
    assert api_as(None).get("/api/v1/models/").status_code == 401


def test_tokens_are_stored_hashed(soc_service, api_as):
    from knox.models import AuthToken

    _, raw = AuthToken.objects.create(user=soc_service, expiry=None)
    stored = AuthToken.objects.get(user=soc_service)
    assert raw not in stored.digest and len(stored.digest) == 128


def test_role_without_permission_gets_403_and_an_audit_event(make_user, api_as):
    from core.models import AuditEvent

    nobody = make_user(None, "no_role")
    response = api_as(nobody).get("/api/v1/models/")
    assert response.status_code == 403
    assert response.json()["error"] == "Your role does not allow this action."
    event = AuditEvent.objects.get(action="permission.denied")
    assert event.actor == nobody and event.payload["path"] == "/api/v1/models/"


def test_schema_endpoint_returns_a_valid_openapi_document(api_as, analyst, tmp_path):
    response = api_as(analyst).get("/api/schema/?format=json")
    assert response.status_code == 200
    doc = json.loads(response.content)
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/models/" in doc["paths"]
    # drf-spectacular validates the generated document against the OpenAPI 3 JSON schema.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))


def test_create_account_prints_a_working_token_once(api_as, capsys):
    call_command("create_account", "svc-1", "--role", "SOC service", "--service")
    out = capsys.readouterr().out.strip().splitlines()
    token = out[-1]
    assert len(token) == 64
    client = api_as(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/me/").json()["roles"] == ["SOC service"]


def test_create_account_refuses_a_duplicate(ml_engineer):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="already exists"):
        call_command(
            "create_account", ml_engineer.username, "--role", "Analyst", "--password", "x" * 12
        )


@pytest.mark.parametrize(
    "role, visible, hidden",
    [
        ("Analyst", ["Monitoring", "Explanations"], ["Fairness", "Audit trail", "Admin"]),
        ("Auditor", ["Fairness", "Audit trail"], ["Admin"]),
        ("Approver", ["Monitoring", "Fairness", "Admin"], []),
    ],
)
def test_navigation_shows_only_what_the_role_may_use(make_user, client, role, visible, hidden):
    client.force_login(make_user(role))
    html = client.get("/").content.decode()
    nav = html.split('aria-label="Main"')[1].split("</nav>")[0]
    for label in visible:
        assert f">{label}<" in nav
    for label in hidden:
        assert f">{label}<" not in nav


def test_pages_refuse_other_roles_and_send_anonymous_users_to_login(analyst, client):
    assert client.get("/registry/audit/").status_code == 302
    client.force_login(analyst)
    assert client.get("/registry/audit/").status_code == 403
    assert client.get("/monitoring/").status_code == 200


def test_env_helpers_fail_loudly(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ConfigError):
        env_bool("X_FLAG", False)
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(ConfigError):
        env_int("X_INT", 1)
    monkeypatch.setenv("X_FLAG", "false")
    assert env_bool("X_FLAG", True) is False


def test_check_deploy_passes_with_production_settings(tmp_path):
    env = dict(os.environ)
    env.update(
        DEBUG="false",
        HTTPS="true",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="gov.example.com",
        GOVSITE_VAR_DIR=str(tmp_path),
    )
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
