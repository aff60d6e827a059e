import re

import pytest

pytestmark = pytest.mark.django_db


def active_entries(html: str) -> list[str]:
    return re.findall(r'class="active" aria-current="page">([^<]+)</a>', html)


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/registry/", ["Registry"]),
        ("/registry/audit/", ["Audit trail"]),
        ("/monitoring/", ["Monitoring"]),
        ("/", []),
    ],
)
def test_exactly_the_current_section_is_marked_active(client, auditor, path, expected):
    client.force_login(auditor)
    response = client.get(path)
    assert response.status_code == 200
    assert active_entries(response.content.decode()) == expected
