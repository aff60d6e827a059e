"""experiments.demo: planned experiment plus a real shadow before approval, split after."""

import io

import pytest

from experiments import demo as demo_ab
from registry import services
from registry.models import Experiment, TrafficSplit
from registry.tests.ab_support import log

pytestmark = pytest.mark.django_db


def test_the_demo_plans_shadows_then_starts_the_split_idempotently(
    approved, staged, make_user, ml_engineer, client
):
    alex = make_user("Approver", "alex")
    champion = approved("1.0.0", model="threat-detector")
    champion = services.version_transition(version=champion, to="production", actor=alex)
    candidate = staged("1.1.0", model="threat-detector")
    for i in range(60):
        log(champion, "champion", decision=i % 3 == 0, label=i % 2, incident=f"INC-{i}")
    out = io.StringIO()
    demo_ab.build(stdout=out)
    demo_ab.build(stdout=out)
    experiment = Experiment.objects.get()
    assert experiment.status == "planned" and experiment.challenger == candidate
    split = TrafficSplit.objects.get()
    assert list(split.shadows.all()) == [candidate] and split.challenger is None
    from monitoring.models import PredictionLog

    shadows = PredictionLog.objects.filter(version=candidate, role="shadow")
    assert shadows.count() == 60  # re-scored once, not twice
    assert "60 logged events re-scored" in out.getvalue()
    client.force_login(alex)
    html = client.get("/registry/models/threat-detector/experiment/").content.decode()
    assert "planned" in html and "Shadow versions" in html and "Incidents paired" in html

    request = services.approval_request_create(version=candidate, actor=ml_engineer)
    services.approval_decide(request=request, approver=alex, decision="approve")
    demo_ab.build(stdout=out)
    demo_ab.build(stdout=out)
    experiment.refresh_from_db()
    assert experiment.status == "running"
    split.refresh_from_db()
    assert (split.challenger, split.challenger_bp) == (candidate, 1000)
    assert not split.shadows.exists()


def test_the_demo_does_nothing_without_its_model():
    out = io.StringIO()
    demo_ab.build(stdout=out)
    assert "skipped" in out.getvalue()
    assert not Experiment.objects.exists()
