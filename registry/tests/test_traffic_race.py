"""Concurrent split edits (and a promotion racing them) never leave a sum other than 100."""

import pytest
from django.db import connection

from conftest import race
from core.models import AuditEvent
from registry import services
from registry.models import Experiment, MLModelVersion, TrafficSplit
from registry.tests.ab_support import live_fixture  # noqa: F401
from registry.traffic import traffic_set

pytestmark = pytest.mark.django_db(transaction=True)


def assert_consistent(model):
    split = TrafficSplit.objects.get(model=model)
    assert split.champion_bp + split.challenger_bp == 10_000
    live = MLModelVersion.objects.filter(model=model)
    assert sum(v.traffic_percentage for v in live) == pytest.approx(100)
    mirrored = {v.pk: v.traffic_percentage for v in live if v.traffic_percentage}
    expected = {split.champion_id: split.champion_bp / 100}
    if split.challenger_id:
        expected[split.challenger_id] = split.challenger_bp / 100
    assert mirrored == {k: v for k, v in expected.items() if v}
    return split


def test_concurrent_split_edits_serialise_and_always_sum_to_100(live, approver):
    champion, challenger = live
    shares = [500, 1000, 0, 2500, 5000, 0, 7500, 9000]

    def edit(i):
        return traffic_set(
            model=champion.model,
            challenger=challenger if shares[i] else None,
            challenger_bp=shares[i],
            shadows=[],
            actor=approver,
        )

    outcomes = race(len(shares), edit)
    assert len(outcomes) == len(shares)
    errors = [exc for kind, exc in outcomes if kind == "error"]
    if connection.vendor == "postgresql":
        assert errors == []  # the model-row lock queues them; none fails
    split = assert_consistent(champion.model)
    succeeded = len(shares) - len(errors)
    assert split.revision == succeeded
    assert AuditEvent.objects.filter(action="traffic.changed").count() == succeeded
    assert Experiment.objects.filter(status__in=["planned", "running"]).count() <= 1


def test_a_split_edit_racing_the_challengers_promotion_stays_consistent(live, approver):
    champion, challenger = live
    traffic_set(
        model=champion.model, challenger=challenger, challenger_bp=1000, shadows=[], actor=approver
    )

    def work(i):
        if i == 0:
            return services.version_transition(version=challenger, to="production", actor=approver)
        return traffic_set(
            model=champion.model,
            challenger=challenger,
            challenger_bp=1000 + 1000 * i,
            shadows=[],
            actor=approver,
        )

    outcomes = race(4, work)
    challenger.refresh_from_db()
    assert challenger.status == "production"
    split = assert_consistent(champion.model)
    # The promotion ran last or the later edits were refused: either way the
    # promoted version is the champion and no challenger is left behind.
    assert split.champion_id == challenger.pk and split.challenger_id is None
    refused = [exc for kind, exc in outcomes if kind == "error"]
    assert all(isinstance(exc, services.GovernanceError) for exc in refused) or (
        connection.vendor != "postgresql"
    )
