"""The demo adds two approvers with a known password: never beside real accounts."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from core.models import AuditEvent
from registry.models import MLModel


@pytest.mark.django_db
def test_the_demo_refuses_a_database_with_real_people():
    get_user_model().objects.create_user("dana.realperson", password="x" * 20)
    with pytest.raises(CommandError, match="database of its own"):
        call_command("demo", verbosity=0)
    assert not get_user_model().objects.filter(username="alex").exists()
    assert not MLModel.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_a_demo_database_with_an_added_account_still_refreshes():
    from govsite.management.commands import demo

    for name, _ in demo.PEOPLE:
        get_user_model().objects.create_user(name)
    get_user_model().objects.create_user("added.later")
    demo.Command()._refuse_a_real_deployment()  # no refusal: the demo's own database
