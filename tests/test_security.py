"""Security settings as behaviour: HTTPS headers and cookies, CSRF on every form, the
Content-Security-Policy (also in headless Chromium), login throttling with its audit
trail, service tokens hashed at rest, and the dependency-audit step."""

import json
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.test import Client

from conftest import PASSWORD
from registry.tests.ab_support import live_fixture, log, log_arm  # noqa: F401
from tests import factories

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db

# --- HTTPS: HSTS and Secure cookies ---------------------------------------------------

PROBE = r"""
import json, secrets
import django
django.setup()
from django.contrib.auth import get_user_model
from django.conf import settings
from django.test import Client

name = "probe-" + secrets.token_hex(4)
get_user_model().objects.create_user(username=name, password="probe-password-1")
client = Client(HTTP_HOST="gov.example.com")
page = client.get("/accounts/login/", secure=True)
login = client.post(
    "/accounts/login/", {"username": name, "password": "probe-password-1"}, secure=True
)
plain = Client(HTTP_HOST="gov.example.com").get("/accounts/login/")
proxied = Client(HTTP_HOST="gov.example.com").get(
    "/accounts/login/", HTTP_X_FORWARDED_PROTO="https"
)
print(json.dumps({
    "page_status": page.status_code,
    "hsts": page.headers.get("Strict-Transport-Security"),
    "csrf_secure": bool(page.cookies["csrftoken"]["secure"]),
    "login_status": login.status_code,
    "session_secure": bool(login.cookies["sessionid"]["secure"]),
    "session_httponly": bool(login.cookies["sessionid"]["httponly"]),
    "plain_status": plain.status_code,
    "plain_location": plain.headers.get("Location"),
    "proxied_hsts": proxied.headers.get("Strict-Transport-Security"),
    "axes_limit": settings.AXES_FAILURE_LIMIT,
    "axes_cooloff": settings.AXES_COOLOFF_TIME.total_seconds(),
}))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """probe(**env) -> what a request sees under the settings that env gives (SQLite)."""
    var = tmp_path_factory.mktemp("https-probe")
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    base.update(
        GOVSITE_VAR_DIR=str(var),
        ALLOWED_HOSTS="gov.example.com",
        DJANGO_SETTINGS_MODULE="govsite.settings",
    )
    migrate = [sys.executable, "manage.py", "migrate", "--no-input", "-v0"]
    subprocess.run(migrate, env=base, cwd=ROOT, check=True, timeout=300)

    def run(**env):
        result = subprocess.run(
            [sys.executable, "-c", PROBE],
            env={**base, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run


def test_https_sends_hsts_and_secure_cookies_and_redirects_plain_http(probe):
    seen = probe(HTTPS="true", LOGIN_FAILURE_LIMIT="7", LOGIN_COOLOFF_MINUTES="30")
    assert seen["page_status"] == 200 and seen["login_status"] == 302
    assert seen["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert seen["csrf_secure"] and seen["session_secure"] and seen["session_httponly"]
    assert seen["plain_status"] == 301
    assert seen["plain_location"] == "https://gov.example.com/accounts/login/"
    # Behind the TLS-terminating proxy, X-Forwarded-Proto: https marks the request secure.
    assert seen["proxied_hsts"] is not None
    assert (seen["axes_limit"], seen["axes_cooloff"]) == (7, 30 * 60)


def test_the_local_default_sends_no_hsts_and_plain_cookies(probe):
    seen = probe()
    assert seen["page_status"] == 200 and seen["login_status"] == 302
    assert seen["hsts"] is None and seen["proxied_hsts"] is None
    assert not seen["csrf_secure"] and not seen["session_secure"]
    assert seen["session_httponly"]
    assert seen["plain_status"] == 200
    assert (seen["axes_limit"], seen["axes_cooloff"]) == (5, 15 * 60)


# --- CSRF on every form ---------------------------------------------------------------


class _Page(HTMLParser):
    """Links and POST forms (action, whether it carries csrfmiddlewaretoken) of a page."""

    def __init__(self):
        super().__init__()
        self.links, self.forms, self._form = [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form" and (a.get("method") or "get").lower() == "post":
            self._form = {"action": a.get("action") or "", "token": False}
        elif tag == "input" and self._form and a.get("name") == "csrfmiddlewaretoken":
            self._form["token"] = bool(a.get("value"))

    def handle_endtag(self, tag):
        if tag == "form" and self._form is not None:
            self.forms.append(self._form)
            self._form = None


FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S | re.I)


def test_every_post_form_in_the_templates_has_a_csrf_token():
    checked = 0
    for template in sorted((ROOT / "templates").rglob("*.html")):
        for form in FORM.findall(template.read_text()):
            if re.search(r"method=[\"']?post", form, re.I):
                checked += 1
                assert "{% csrf_token %}" in form, f"{template}: {form[:120]}"
    assert checked >= 10


SKIP_LINKS = re.compile(r"^/(static/|api/|metrics)|/export|/report/\w+$|\.(csv|json)$")


def _crawl(client, seeds, limit=150):
    """GET pages reachable from seeds (same site, no query strings) -> {url: _Page}."""
    pages, queue = {}, list(seeds)
    while queue and len(pages) < limit:
        url = queue.pop(0)
        if url in pages:
            continue
        response = client.get(url)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            pages[url] = None
            continue
        parsed = _Page()
        parsed.feed(response.content.decode())
        pages[url] = parsed
        for href in parsed.links:
            target = urlsplit(urljoin(url, href))
            path = target.path
            if target.netloc or target.query or SKIP_LINKS.search(path):
                continue
            if path.startswith("/admin/") and not (
                path == "/admin/" or path.startswith("/admin/registry/")
            ):
                continue
            if path.endswith(("/delete/", "/history/")):
                continue
            queue.append(path)
    return {url: page for url, page in pages.items() if page is not None}


@pytest.fixture
def governed(live, approver, ml_engineer, staged):
    """A model in production with an experiment, an open alert, an incident, a pending
    approval request and a fairness audit: every page shows its forms."""
    from fairness.services import fairness_audit_create
    from registry import services

    champion, challenger = live
    log_arm(champion, "champion", tp=30, fp=10)
    log(champion, "champion", decision=True, label=None, incident="INC-CSRF")
    factories.alert(
        champion.model, version=champion, dedupe_key="csrf-test", title="drift on bytes_out"
    )
    pending = staged("1.2.0")
    services.approval_request_create(version=pending, actor=ml_engineer)
    fairness_audit_create(version=champion, enqueue=False)
    return champion


SEEDS = ["/", "/monitoring/", "/explain/", "/fairness/", "/registry/", "/registry/audit/"]


@pytest.mark.parametrize("role", ["Approver", "Analyst", "Auditor", "ML engineer"])
def test_every_post_form_a_role_sees_carries_the_token_and_is_refused_without_it(
    governed, make_user, role
):
    user = make_user(role, "csrf_" + role.lower().replace(" ", "_"))
    client = Client()
    client.force_login(user)
    pages = _crawl(client, SEEDS + ["/admin/"])
    assert len(pages) >= 8, sorted(pages)
    actions = set()
    for url, page in pages.items():
        for form in page.forms:
            assert form["token"], f"POST form to {form['action']!r} on {url} has no CSRF token"
            actions.add(urljoin(url, form["action"]) if form["action"] else url)
    assert "/accounts/logout/" in actions  # every signed-in page has the logout form
    fairness_run = f"/fairness/versions/{governed.pk}/run/"
    expected = {
        "Approver": {"/monitoring/threat/run/", "/admin/registry/approvalrequest/", fairness_run},
        "Analyst": {"/explain/incidents/INC-CSRF/verdict/", "/monitoring/alerts/"},
        "Auditor": set(),
        "ML engineer": {"/monitoring/threat/run/", fairness_run},
    }[role]
    assert all(any(a.startswith(e) for a in actions) for e in expected), sorted(actions)

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    for action in sorted(actions):
        response = strict.post(action, {})
        assert response.status_code == 403, (action, response.status_code)
        assert b"CSRF" in response.content, action


def test_login_forms_refuse_a_post_without_the_token_and_accept_one_with_it(analyst):
    strict = Client(enforce_csrf_checks=True)
    for url in ("/accounts/login/", "/admin/login/"):
        credentials = {"username": analyst.username, "password": PASSWORD}
        response = strict.post(url, credentials)
        assert response.status_code == 403 and b"CSRF" in response.content
        page = _Page()
        page.feed(strict.get(url).content.decode())
        assert [f["token"] for f in page.forms] == [True]
    token = strict.cookies["csrftoken"].value
    response = strict.post(
        "/accounts/login/",
        {"username": analyst.username, "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302


# --- Content-Security-Policy ----------------------------------------------------------


def _policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.parametrize(
    "url", ["/", "/accounts/login/", "/admin/login/", "/api/docs/", "/monitoring/"]
)
def test_pages_carry_the_content_security_policy(client, analyst, url):
    client.force_login(analyst)
    policy = _policy(client.get(url))
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    for sources in policy.values():
        for source in sources:
            assert source.startswith("'") or source in ("data:",), source


def test_templates_have_no_inline_scripts_handlers_or_third_party_hosts():
    for template in sorted((ROOT / "templates").rglob("*.html")):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text, re.I):
            assert "src=" in tag or "application/json" in tag, f"{template}: {tag}"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{template}: inline event handler"
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), f"{template}: remote"


def test_the_plotly_bundle_reaches_eval_only_where_the_charts_never_go():
    """script-src has no 'unsafe-eval'. The served plotly.js has two eval sites: the
    globalThis fallback of engines without globalThis, and the map-tile worker loader
    (map traces, which no page draws). A bundle with more needs a new look (or
    plotly's strict bundle); the browser tests fail on any violation at run time."""
    bundle = (Path(django_settings.STATICFILES_DIRS[1][1]) / "plotly.min.js").read_text()
    assert bundle.count("new Function(") == 1
    assert 'new Function("return this")' in bundle
    assert len(re.findall(r"\beval\(", bundle)) == 1 and "globalThis.eval(r)" in bundle


# --- login throttling -------------------------------------------------------------------


@pytest.fixture
def throttle(settings):
    # A fast hasher keeps each attempt well inside the short cool-off on a busy machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=5)
    return settings.AXES_COOLOFF_TIME.total_seconds()


def _login(client, url, username, password, ip):
    data = {"username": username, "password": password}
    if url.startswith("/admin/"):
        data["next"] = "/admin/"
    return client.post(url, data, REMOTE_ADDR=ip)


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_failed_logins_lock_the_username_until_the_cool_off_ends(
    throttle, approver, second_approver, url
):
    from core.audit import audit_verify
    from core.models import AuditEvent

    client = Client()
    for _ in range(3):
        response = _login(client, url, approver.username, "wrong-password", "10.0.0.1")
        assert response.status_code in (200, 429)
    response = _login(client, url, approver.username, PASSWORD, "10.0.0.1")
    assert response.status_code == 429 and not _signed_in(client)
    assert b"Too many failed logins" in response.content
    # The username is locked from any address; other people log in as usual.
    other = Client()
    assert _login(other, url, approver.username, PASSWORD, "10.9.9.9").status_code == 429
    assert _login(other, url, second_approver.username, PASSWORD, "10.9.9.9").status_code == 302
    assert _signed_in(other)

    # One event per username and address per cool-off period; the repeats are counted
    # outside the chain (core.audit_repeats; test_login_audit.py).
    failed = AuditEvent.objects.filter(action="auth.login_failed")
    assert sorted(e.payload["ip"] for e in failed) == ["10.0.0.1", "10.9.9.9"]
    assert {e.payload["username"] for e in failed} == {approver.username}
    assert all("wrong-password" not in json.dumps(e.payload) for e in failed)
    locked = AuditEvent.objects.filter(action="auth.locked_out")
    assert locked.exists() and locked.first().payload["username"] == approver.username
    assert audit_verify().ok

    time.sleep(throttle + 0.5)
    response = _login(client, url, approver.username, PASSWORD, "10.0.0.1")
    assert response.status_code == 302 and _signed_in(client)


def test_failed_logins_from_one_address_lock_that_address(throttle, analyst):
    client = Client()
    for name in ("mallory", "trudy", "eve"):
        _login(client, "/accounts/login/", name, "guess", "10.0.0.7")
    assert (
        _login(client, "/accounts/login/", analyst.username, PASSWORD, "10.0.0.7").status_code
        == 429
    )
    assert not _signed_in(client)
    response = _login(Client(), "/accounts/login/", analyst.username, PASSWORD, "10.0.0.8")
    assert response.status_code == 302


def test_a_login_below_the_limit_succeeds_and_resets_the_count(throttle, analyst):
    client = Client()
    for _ in range(2):
        _login(client, "/accounts/login/", analyst.username, "typo", "10.0.1.1")
    assert (
        _login(client, "/accounts/login/", analyst.username, PASSWORD, "10.0.1.1").status_code
        == 302
    )
    client.logout()
    for _ in range(2):
        _login(client, "/accounts/login/", analyst.username, "typo", "10.0.1.1")
    assert (
        _login(client, "/accounts/login/", analyst.username, PASSWORD, "10.0.1.1").status_code
        == 302
    )


def test_api_tokens_work_while_the_account_name_is_locked_out(throttle, soc_service, api_as):
    api = api_as(soc_service)
    for _ in range(4):
        _login(Client(), "/accounts/login/", soc_service.username, "guess", "10.0.2.1")
    response = _login(Client(), "/accounts/login/", soc_service.username, "guess", "10.0.2.2")
    assert response.status_code == 429
    assert api.get("/api/v1/me/").status_code == 200


def test_the_client_address_is_read_behind_the_configured_proxies(settings, rf):
    from govsite.security import client_ip

    request = rf.get("/", REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    assert client_ip(request) == "10.0.0.254"
    settings.PROXY_COUNT = 1
    assert client_ip(request) == "203.0.113.9"  # the forged first entry is ignored
    settings.PROXY_COUNT = 2
    assert client_ip(request) == "6.6.6.6"
    settings.PROXY_COUNT = 3
    assert client_ip(request) == "10.0.0.254"  # fewer hops than proxies: not forwarded


# --- service tokens hashed at rest --------------------------------------------------------


def _database_text() -> str:
    """Every value of every table, as text."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value).decode("latin-1")
                    chunks.append(str(value))
    return "\n".join(chunks)


def test_a_service_token_is_stored_only_as_a_digest(capsys):
    from knox.crypto import hash_token
    from knox.models import AuthToken

    call_command("create_account", "svc-hashed", "--role", "SOC service", "--service")
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert len(token) == 64
    stored = _database_text()
    assert "svc-hashed" in stored  # the scan does read the tables
    assert token not in stored
    assert AuthToken.objects.get(user__username="svc-hashed").digest == hash_token(token)


# --- the dependency audit -------------------------------------------------------------------


def _audit(tmp_path, report: dict):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "audit-deps"), "--report", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_audit_fails_on_a_known_vulnerability(tmp_path):
    vuln = {"id": "PYSEC-0000-1", "fix_versions": ["5.2.20"], "aliases": [], "description": ""}
    result = _audit(
        tmp_path,
        {"dependencies": [{"name": "django", "version": "5.2.19", "vulns": [vuln]}]},
    )
    assert result.returncode == 1
    assert "PYSEC-0000-1" in result.stdout and "FAILED" in result.stdout


def test_the_audit_warns_when_no_package_could_be_audited(tmp_path):
    reason = "Dependency not found on PyPI and could not be audited: django (5.2.19)"
    result = _audit(tmp_path, {"dependencies": [{"name": "django", "skip_reason": reason}]})
    assert result.returncode == 0
    assert "could NOT be performed" in result.stdout
    assert "no known vulnerabilities" not in result.stdout.lower()


def test_the_audit_passes_a_clean_report(tmp_path):
    result = _audit(
        tmp_path, {"dependencies": [{"name": "django", "version": "5.2.19", "vulns": []}]}
    )
    assert result.returncode == 0
    assert "no known vulnerabilities in 1 audited packages" in result.stdout


# --- the policy in headless Chromium ------------------------------------------------------
# The page fixture fails any browser test whose pages report a CSP violation, so the
# dashboard, waterfall, importance, fairness and admin browser tests check the policy too.


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_policy_blocks_and_reports_an_injected_inline_script(analyst, login, page):
    # A fresh live server renders its first page slowly on a busy machine.
    page.goto("/accounts/login/", timeout=90000)
    login(analyst)
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.injected = true'; document.body.appendChild(s); }"
    )
    page.wait_for_function("() => true")
    deadline = time.monotonic() + 5
    while not page.csp_violations and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert page.evaluate("window.injected === undefined")
    assert any("script-src" in v for v in page.csp_violations), page.csp_violations
    page.csp_violations.clear()  # seen and expected: the fixture checks for others


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_experiment_chart_renders_under_the_policy(live, approver, analyst, login, page):
    from registry.traffic import ExperimentPlan, traffic_set

    champion, challenger = live
    traffic_set(
        model=champion.model,
        challenger=challenger,
        challenger_bp=2000,
        shadows=[],
        actor=approver,
        plan=ExperimentPlan(hypothesis="no precision loss"),
    )
    log_arm(champion, "champion", tp=40, fp=10)
    log_arm(challenger, "challenger", tp=20, fp=5)
    login(analyst)
    page.goto("/registry/models/threat/experiment/")
    page.wait_for_selector("#metric-chart .main-svg .scatterlayer .point")
    assert page.locator("#metric-chart .scatterlayer .point").count() == 2
    assert page.locator("#metric-chart .errorbar").count() == 2
    assert "precision" in page.text_content("#metric-chart .ytitle")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_swagger_ui_works_under_the_policy(page):
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "govsite API" in page.text_content(".swagger-ui .info .title")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() > 10


def test_check_deploy_flags_the_local_default(tmp_path):
    """The deploy check that tests/test_foundation.py passes with production values does
    notice insecure settings: the local default (no HTTPS) fails it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    env.update(GOVSITE_VAR_DIR=str(tmp_path), SECRET_KEY="x" * 60 + "-local-default-check")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in output, output
