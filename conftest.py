"""Shared fixtures: role personas, API clients, a real Celery worker, headless Chromium."""

import io
import os
import shutil
import threading

import numpy as np
import pytest

# Playwright's sync API runs an event loop in the test thread; Django's ORM would
# refuse to run there without this.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def audit_checkpoint_file(settings, tmp_path):
    """Each test's own checkpoint file sink: a checkpoint left in GOVSITE_VAR_DIR by an
    earlier test would describe a chain that test's database no longer has."""
    settings.AUDIT_CHECKPOINT_FILE = tmp_path / "audit-checkpoints.jsonl"
    return settings.AUDIT_CHECKPOINT_FILE


@pytest.fixture
def make_user(db):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from core.roles import STAFF_ROLES

    def make(role: str | None, username: str | None = None, **extra):
        User = get_user_model()
        username = username or (role or "nobody").lower().replace(" ", "_")
        user = User.objects.create_user(
            username=username,
            password=PASSWORD,
            email=f"{username}@example.test",
            is_staff=role in STAFF_ROLES,
            **extra,
        )
        if role:
            if not Group.objects.filter(name=role).exists():
                # Transactional tests flush the tables the data migration filled.
                from core.roles import roles_sync

                roles_sync()
            user.groups.add(Group.objects.get(name=role))
        return user

    return make


@pytest.fixture
def ml_engineer(make_user):
    return make_user("ML engineer", "mira_engineer")


@pytest.fixture
def approver(make_user):
    return make_user("Approver", "alex_approver")


@pytest.fixture
def second_approver(make_user):
    return make_user("Approver", "sam_approver")


@pytest.fixture
def analyst(make_user):
    return make_user("Analyst", "ana_analyst")


@pytest.fixture
def auditor(make_user):
    return make_user("Auditor", "otto_auditor")


@pytest.fixture
def soc_service(make_user):
    return make_user("SOC service", "soc_backend")


@pytest.fixture
def api_as():
    """api_as(user) -> an APIClient authenticated as user (token for services, session else)."""
    from knox.models import AuthToken
    from rest_framework.test import APIClient

    def make(user=None, *, token: bool | None = None):
        client = APIClient()
        if user is None:
            return client
        use_token = token if token is not None else user.groups.filter(name="SOC service").exists()
        if use_token:
            _, raw = AuthToken.objects.create(user=user, expiry=None)
            client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
        else:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def celery_worker(transactional_db):
    """A real Celery worker (solo pool, in a thread) consuming from the configured broker."""
    from celery.contrib.testing.worker import start_worker

    from govsite.celery import app

    # What a worker process does at start-up: import every app's tasks module, since
    # services enqueue tasks by name and this process may not have imported them.
    app.loader.import_default_modules()
    app.control.purge()
    with start_worker(
        app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
    ) as worker:
        yield worker


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    exe = chromium_path()
    if exe is None:
        message = "Debian's chromium is not installed (scripts/test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS)
    yield chromium
    chromium.close()
    playwright.stop()


# Reports every Content-Security-Policy violation of every document the page loads
# (init scripts are exempt from the page's policy); the page fixture fails a test
# whose pages had any.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspReport(
    e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " in " + e.documentURI
    + (e.sample ? " (" + e.sample + ")" : ""));
});
"""


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    violations = []
    context.expose_function("__cspReport", lambda text: violations.append(text))
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.csp_violations = violations
    page.on(
        "console",
        lambda m: "Content Security Policy" in m.text and violations.append(m.text),
    )
    page.set_default_timeout(15000)
    yield page
    shot_dir = os.environ.get("SCREENSHOT_DIR", "var/screenshots")
    os.makedirs(shot_dir, exist_ok=True)
    page.screenshot(path=os.path.join(shot_dir, f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not violations, "Content-Security-Policy violations: " + "; ".join(violations)


@pytest.fixture
def login(page):
    """login(user) through the real login form."""

    def do(user, password: str = PASSWORD):
        page.goto("/accounts/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=current-user]")
        return page

    return do


# --- registry fixtures shared by every app's tests ---------------------------------


@pytest.fixture(scope="session")
def trained():
    """A small real XGBoost model trained on generated events (shared by the session)."""
    from registry import synthetic
    from registry.training import train

    events = synthetic.generate(6000, seed=7)
    return train(events, num_boost_round=25, seed=7)


@pytest.fixture(scope="session")
def registration_files(trained):
    from registry.registration import evaluation_npz

    metadata = trained.registration_metadata()
    metadata.pop("validation_metrics")
    metadata.update(intended_use="triage SOC events", limitations="synthetic data only")
    return trained.artifact_bytes("json"), metadata, evaluation_npz(trained)


@pytest.fixture
def artifact_root(settings, tmp_path):
    from registry.artifacts import booster_cache

    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    booster_cache.clear()
    return settings.ARTIFACT_ROOT


@pytest.fixture
def register(trained, ml_engineer, artifact_root):
    from tests import factories

    def make(version="1.0.0", model="threat", user=None, gate=False):
        # gate=True leaves the model's policy as it is (a new model's gate is on).
        return factories.version(
            trained,
            user=user or ml_engineer,
            model=model,
            semver=version,
            gate=None if gate else False,
        )

    return make


@pytest.fixture
def staged(register, ml_engineer):
    """register + move to staging."""
    from registry import services

    def make(version="1.0.0", **kw):
        obj = register(version, **kw)
        for to in ("testing", "staging"):
            obj = services.version_transition(version=obj, to=to, actor=ml_engineer)
        return obj

    return make


@pytest.fixture
def approved(staged, ml_engineer, approver):
    from registry import services

    def make(version="1.0.0", **kw):
        obj = staged(version, **kw)
        request = services.approval_request_create(version=obj, actor=ml_engineer)
        services.approval_decide(request=request, approver=approver, decision="approve")
        obj.refresh_from_db()
        return obj

    return make


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def race(n: int, work, timeout: float = 120):
    """Run work(0..n-1) in n threads released together; returns [("ok"|"error", value)]."""
    from django.db import connection

    barrier = threading.Barrier(n)
    outcomes = []

    def run(i):
        barrier.wait()
        try:
            outcomes.append(("ok", work(i)))
        except Exception as exc:
            outcomes.append(("error", exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return outcomes
