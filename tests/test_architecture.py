"""The layer rule of docs/architecture.md, checked on the source.

Each app sits on a layer; a module may import its own app and the apps on lower
layers, never an app on its own layer or above. No module imports project code inside
a function (the usual way to hide a cycle), except an ``AppConfig.ready`` (apps are not
loaded when apps.py is imported) and type-only imports under ``TYPE_CHECKING``. Tests,
the root conftest and the benchmarks are outside the rule.
"""

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Task

ROOT = Path(__file__).resolve().parent.parent

LAYERS = {
    "core": 0,
    "registry": 1,
    "monitoring": 2,
    "explain": 3,
    "fairness": 3,
    "experiments": 3,
    "govsite": 4,
}


def _modules():
    for app in LAYERS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "tests" not in path.relative_to(ROOT).parts:
                yield app, path


def _imported(node) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    return []


def _type_checking_nodes(tree) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for child in ast.walk(node))
    return inside


def layer_violations(app: str, path: Path, source: str) -> list[str]:
    """Every import in ``source`` (a module of ``app``) that breaks the rule."""
    tree = ast.parse(source)
    top = {id(node) for node in tree.body}
    type_only = _type_checking_nodes(tree)
    where = path.relative_to(ROOT) if path.is_absolute() else path
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        for module in _imported(node):
            target = module.split(".")[0]
            if target not in LAYERS:
                continue
            line = f"{where}:{node.lineno} imports {module}"
            if target != app and LAYERS[target] >= LAYERS[app]:
                found.append(
                    f"{line}: {app} (layer {LAYERS[app]}) may not import "
                    f"{target} (layer {LAYERS[target]})"
                )
            nested = id(node) not in top and id(node) not in type_only
            if nested and path.name != "apps.py":
                found.append(f"{line} inside a function")
    return found


def test_every_module_keeps_to_its_layer():
    violations = []
    for app, path in _modules():
        violations += layer_violations(app, path, path.read_text())
    assert violations == []


@pytest.mark.parametrize(
    "app, source, broken",
    [
        ("registry", "from monitoring.models import PredictionLog\n", "may not import monitoring"),
        ("explain", "from fairness import services\n", "may not import fairness"),
        ("core", "import registry.models\n", "may not import registry"),
        ("monitoring", "from govsite.celery import app\n", "may not import govsite"),
        ("registry", "def f():\n    from registry import traffic\n", "inside a function"),
    ],
)
def test_the_check_catches_an_import_that_breaks_the_rule(app, source, broken):
    found = layer_violations(app, Path(f"{app}/example.py"), source)
    assert len(found) == 1 and broken in found[0]


@pytest.mark.parametrize(
    "app, source",
    [
        (
            "monitoring",
            "from registry.models import MLModel\nfrom core.audit import audit_record\n",
        ),
        ("govsite", "from fairness import services\n"),
        (
            "registry",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from registry.models import MLModel\n",
        ),
        ("fairness", "def f():\n    import numpy\n"),
    ],
)
def test_the_check_lets_allowed_imports_through(app, source):
    assert layer_violations(app, Path(f"{app}/example.py"), source) == []


def test_every_task_enqueued_by_name_exists():
    """Services enqueue their own app's tasks by name (core.queue.enqueue_on_commit), so
    a misspelt name would be accepted by the broker and never run."""
    names = set()
    for _, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "enqueue_on_commit"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(node.args[0].value)
    assert names, "no enqueue_on_commit call found: the check looks in the wrong place"
    for name in names:
        module, _, attr = name.rpartition(".")
        task = getattr(importlib.import_module(module), attr)
        assert isinstance(task, Task) and task.name == name


def test_every_beat_entry_names_a_task_a_worker_runs(tmp_path):
    """The schedule lives in the database (django-celery-beat) and names tasks by string:
    a task that moved module without a data migration would be sent and never run. Read
    from a database freshly migrated in a subprocess (the suite's own database loses the
    migrations' rows to the flush of transactional tests)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["GOVSITE_VAR_DIR"] = str(tmp_path)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "--no-input", "-v0"], env=env, check=True, timeout=300)
    script = (
        "import json; from django_celery_beat.models import PeriodicTask; "
        "from govsite.celery import app; app.loader.import_default_modules(); "
        "print(json.dumps([sorted(PeriodicTask.objects.values_list('task', flat=True)), "
        "sorted(app.tasks)]))"
    )
    out = subprocess.run(
        manage + ["shell", "-c", script],
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    scheduled, registered = json.loads(out.strip().splitlines()[-1])
    assert len(scheduled) >= 8, scheduled
    assert set(scheduled) - set(registered) == set()
