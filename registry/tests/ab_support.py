"""Helpers for the A/B tests: a live champion with an approved challenger, logged traffic."""

import pytest
from django.utils import timezone

from registry import services
from tests import factories


@pytest.fixture(name="live")
def live_fixture(approved, approver):
    """(champion 1.0.0 in production, challenger 1.1.0 approved in staging)."""
    champion = approved("1.0.0")
    champion = services.version_transition(version=champion, to="production", actor=approver)
    challenger = approved("1.1.0")
    return champion, challenger


def log(version, role, *, decision, label, incident="", entity="", at=None, n=1):
    """Store n prediction rows of one version and role with the given decision and label."""
    ids = [factories.serial() for _ in range(n)]
    return factories.predictions_log(
        version,
        [
            {
                "request_id": f"req-{i}",
                "incident_id": incident or f"inc-{i}",
                "entity": entity or f"host-{i}",
            }
            for i in ids
        ],
        score=0.9 if decision else 0.1,
        decision=decision,
        role=role,
        label=label,
        created_at=at or timezone.now(),
    )


def log_arm(version, role, *, tp, fp, at=None):
    """Flagged, labelled rows: tp true positives and fp false positives."""
    log(version, role, decision=True, label=1, n=tp, at=at)
    log(version, role, decision=True, label=0, n=fp, at=at)
