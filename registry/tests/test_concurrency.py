"""Races between concurrent promotions: the database guarantees one champion."""

import pytest

from conftest import race
from registry import services
from registry.models import MLModelVersion

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_promotions_leave_exactly_one_production_version(approved, approver):
    versions = [approved(f"1.{i}.0") for i in range(4)]
    outcomes = race(
        4,
        lambda i: services.version_transition(version=versions[i], to="production", actor=approver),
    )
    assert len(outcomes) == 4
    assert MLModelVersion.objects.filter(status="production").count() == 1
    # serialised on the model row: every promotion ran, the last one holds production
    assert sum(1 for kind, _ in outcomes if kind == "ok") >= 1


def test_concurrent_decisions_on_one_request_record_one_approval(
    staged, ml_engineer, approver, second_approver
):
    version = staged()
    request = services.approval_request_create(version=version, actor=ml_engineer)
    people = [approver, second_approver]
    outcomes = race(
        2,
        lambda i: services.approval_decide(request=request, approver=people[i], decision="approve"),
    )
    request.refresh_from_db()
    assert request.status == "approved"
    assert [kind for kind, _ in outcomes].count("ok") == 1
    assert request.decisions.count() == 1
