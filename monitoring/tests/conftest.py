import pytest

from registry.models import MLModel


@pytest.fixture
def nobody(make_user):
    """A signed-in account without any role."""
    return make_user(None, "nora_norole")


@pytest.fixture
def model(db):
    return MLModel.objects.create(name="threat")
