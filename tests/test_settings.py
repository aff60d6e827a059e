"""Settings as behaviour: strict environment parsing, no side effects at import, the
production-mode SECRET_KEY rule, and one way of reading each setting."""

import ast
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings

from core.env import ConfigError, env_bool, local_secret_key

ROOT = Path(__file__).resolve().parent.parent
APPS = ("core", "registry", "monitoring", "explain", "fairness", "experiments", "govsite")
# Variables that would change what the subprocesses below see.
CLEARED = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SECRET_KEY",
    "AUDIT_SIGNING_KEY",
    "AUDIT_SIGNING_KEY_FILE",
    "AUDIT_VERIFY_KEYS",
    "DEBUG",
    "ARTIFACT_ROOT",
    "DRIFT_SEASONAL_FEATURES",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def run_python(code: str, var_dir: Path, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    base.update(GOVSITE_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="govsite.settings")
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- env_bool -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "no", "1", "0", "on", "off", "y", "t", "maybe", " true"])
def test_env_bool_refuses_anything_but_true_or_false(monkeypatch, value):
    monkeypatch.setenv("X_FLAG", value)
    with pytest.raises(ConfigError) as raised:
        env_bool("X_FLAG", False)
    assert "X_FLAG" in str(raised.value) and repr(value) in str(raised.value)


@pytest.mark.parametrize(
    "value, expected",
    [("true", True), ("True", True), ("TRUE", True), ("false", False), ("False", False)],
)
def test_env_bool_reads_true_and_false_in_any_case(monkeypatch, value, expected):
    monkeypatch.setenv("X_FLAG", value)
    assert env_bool("X_FLAG", not expected) is expected


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_unset_or_empty_is_the_default(monkeypatch, default):
    monkeypatch.delenv("X_FLAG", raising=False)
    assert env_bool("X_FLAG", default) is default
    monkeypatch.setenv("X_FLAG", "")
    assert env_bool("X_FLAG", default) is default


def test_a_malformed_boolean_stops_the_settings(tmp_path):
    result = run_python("import govsite.settings", tmp_path / "var", HTTPS="1")
    assert result.returncode != 0
    assert "HTTPS must be true or false, got '1'" in result.stderr


# --- no side effects at import --------------------------------------------------------


def test_importing_settings_creates_nothing(tmp_path):
    var = tmp_path / "var"
    code = (
        "from django.conf import settings\n"
        "print(settings.DATABASES['default']['NAME'], settings.CELERY_BROKER_URL,"
        " settings.STATIC_ROOT, settings.ARTIFACT_ROOT)"
    )
    result = run_python(code, var)
    assert result.returncode == 0, result.stderr
    assert not var.exists(), sorted(str(p) for p in var.rglob("*"))
    assert list(tmp_path.iterdir()) == []


def test_start_up_creates_the_folders_the_embedded_default_needs(tmp_path):
    """django.setup() (every manage.py command, the worker, beat, gunicorn) makes the
    SQLite and broker folders, so migrate and the worker work on a fresh checkout."""
    var = tmp_path / "var"
    result = run_python("import django; django.setup()", var)
    assert result.returncode == 0, result.stderr
    for folder in ("broker/out", "broker/processed", "broker/control", "staticfiles"):
        assert (var / folder).is_dir(), folder
    # The generated key is made on its first use, not at start-up.
    assert not (var / "secret_key").exists()


# --- SECRET_KEY -----------------------------------------------------------------------


def test_production_mode_refuses_to_start_without_a_secret_key(tmp_path):
    var = tmp_path / "var"
    result = run_python(
        "import govsite.settings", var, DATABASE_URL="postgres://govsite@db.invalid:5432/govsite"
    )
    assert result.returncode != 0
    assert "ConfigError: SECRET_KEY is required in production mode" in result.stderr
    assert not var.exists()


@pytest.mark.parametrize(
    "env",
    [
        # production mode with its keys (the audit checkpoints' too: core.signing)
        {"SECRET_KEY": "k" * 50, "AUDIT_SIGNING_KEY": "a" * 43 + "="},
        {"DEBUG": "true"},  # a developer on a server database
    ],
)
def test_a_server_database_starts_with_a_key_or_in_debug(tmp_path, env):
    code = "from django.conf import settings; print(settings.PRODUCTION_MODE)"
    result = run_python(
        code, tmp_path / "var", DATABASE_URL="postgres://govsite@db.invalid:5432/govsite", **env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str("DEBUG" not in env)


def test_the_embedded_default_generates_one_key_and_keeps_it(tmp_path):
    var = tmp_path / "var"
    code = (
        "import json; from django.conf import settings\n"
        "print(json.dumps([settings.PRODUCTION_MODE, str(settings.SECRET_KEY)]))"
    )
    first = run_python(code, var)
    assert first.returncode == 0, first.stderr
    production, key = json.loads(first.stdout.strip().splitlines()[-1])
    assert production is False and len(key) >= 50
    path = var / "secret_key"
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = run_python(code, var)
    assert json.loads(second.stdout.strip().splitlines()[-1])[1] == key


def test_processes_starting_together_share_one_generated_key(tmp_path):
    path = tmp_path / "var" / "secret_key"
    barrier = threading.Barrier(8)
    keys = []

    def start():
        barrier.wait()
        keys.append(local_secret_key(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(keys) == 8 and len(set(keys)) == 1
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]


# --- one way of reading settings ------------------------------------------------------


def _app_sources():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts:
                continue
            yield path, ast.parse(path.read_text(), str(path))


def test_application_code_reads_settings_without_fallback_defaults():
    """A default repeated in getattr(settings, X, default) can disagree with settings.py
    (DRIFT_SEASONAL_FEATURES did: [] in the code, login_hour in settings and the docs)."""
    found = []
    for path, tree in _app_sources():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "settings"
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_every_setting_the_application_reads_is_defined():
    missing = set()
    for path, tree in _app_sources():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "settings"
                and node.attr.isupper()
                and not hasattr(django_settings, node.attr)
            ):
                missing.add(f"{path.relative_to(ROOT)}: settings.{node.attr}")
    assert sorted(missing) == []


def test_seasonal_features_come_from_settings_alone(tmp_path):
    code = "from django.conf import settings; print(settings.DRIFT_SEASONAL_FEATURES)"
    default = run_python(code, tmp_path / "a")
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == "['login_hour']"
    chosen = run_python(code, tmp_path / "b", DRIFT_SEASONAL_FEATURES="login_hour, geo_velocity")
    assert chosen.stdout.strip() == "['login_hour', 'geo_velocity']"


def test_the_drift_job_has_no_seasonal_default_of_its_own(settings):
    """The drift job reads DRIFT_SEASONAL_FEATURES only from settings: without the
    setting it fails on it instead of falling back to a default that disagrees."""
    from monitoring import drift_jobs

    # A partial span and a result without a verdict: nothing to alert on or clear.
    version = SimpleNamespace(model=None, pk=0)
    report = SimpleNamespace(dataset={"partial_span": True})
    result = SimpleNamespace(status=None)
    drift_jobs._drift_alerts(version, result, report, 0)
    del settings.DRIFT_SEASONAL_FEATURES
    with pytest.raises(AttributeError):
        drift_jobs._drift_alerts(version, result, report, 0)
