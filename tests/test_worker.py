"""Tasks run through a real Celery worker on the configured broker (Redis in CI)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.db import transaction

from core.models import Notification
from core.notifications import notification_queue

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_receiver():
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Receiver.received
    server.shutdown()


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_notification_is_delivered_by_the_worker_after_commit(
    celery_worker, webhook_receiver, settings, approver
):
    url, received = webhook_receiver
    settings.ALERT_WEBHOOK_URL = url
    with transaction.atomic():
        note = notification_queue(
            event="approval.requested",
            subject="Approval requested: threat 1.1.0",
            body="mira asks for approval",
            roles=["Approver"],
            payload={"version": "1.1.0"},
        )
        # Nothing may leave before the transaction commits.
        time.sleep(0.3)
        assert received == []
    assert wait_for(lambda: Notification.objects.get(pk=note.pk).status == "sent")
    note.refresh_from_db()
    assert note.recipients == ["alex_approver@example.test"]
    assert note.attempts == 1
    content_type, message = received[0]
    assert content_type == "application/json"
    assert message["text"].startswith("*Approval requested: threat 1.1.0*")
    assert message["event"] == "approval.requested" and message["data"] == {"version": "1.1.0"}


def test_a_failing_webhook_is_retried_and_recorded(celery_worker, settings):
    settings.ALERT_WEBHOOK_URL = "http://127.0.0.1:9/unreachable"
    with transaction.atomic():
        note = notification_queue(event="x", subject="s", body="b")
    assert wait_for(lambda: Notification.objects.get(pk=note.pk).attempts >= 2, timeout=60)
    note.refresh_from_db()
    assert note.status in ("failed", "sending")
    assert "refused" in note.last_error.lower() or note.last_error
