"""The embedded SQLite default serves explanations while another process writes."""

import sqlite3
import threading
import time

import pytest
from django.db import connection
from django.test import Client

from explain.models import Explanation

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="the busy timeout is SQLite's (PostgreSQL waits)"
)


@pytest.fixture
def version(register):
    return register()


def _hold_the_write_lock(seconds: float) -> threading.Event:
    """Another process's long write transaction (a feedback load), on its own connection."""
    started = threading.Event()

    def hold():
        other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        started.set()
        time.sleep(seconds)
        other.execute("ROLLBACK")
        other.close()

    threading.Thread(target=hold, daemon=True).start()
    started.wait()
    return started


def test_the_busy_timeout_is_set_and_waits_for_a_short_write(
    transactional_db, version, trained, log_predictions, analyst
):
    assert connection.settings_dict["OPTIONS"]["timeout"] >= 5
    log_predictions(version, trained.X_valid[:2], ids=["L-0", "L-1"])
    client = Client()
    client.force_login(analyst)
    _hold_the_write_lock(1.0)
    assert client.get("/explain/incidents/L-1/").status_code == 200
    assert Explanation.objects.count() == 1  # stored once the write was done


def test_a_write_longer_than_the_busy_timeout_does_not_fail_an_explanation(
    transactional_db, version, trained, log_predictions, analyst
):
    log_predictions(version, trained.X_valid[:2], ids=["L-0", "L-1"])
    client = Client()
    client.force_login(analyst)
    options = connection.settings_dict["OPTIONS"]
    connection.close()
    saved, options["timeout"] = options["timeout"], 0.3
    try:
        _hold_the_write_lock(2.0)
        response = client.get("/explain/incidents/L-1/")
    finally:
        connection.close()
        options["timeout"] = saved
    assert response.status_code == 200, response.content[:300]
    assert b"L-1" in response.content
    time.sleep(2.0)
    assert client.get("/explain/incidents/L-1/").status_code == 200
    assert Explanation.objects.count() == 1  # the next request stored it
