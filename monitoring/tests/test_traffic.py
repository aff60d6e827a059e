import json

import pytest
from django.core.management import call_command
from knox.models import AuthToken

from monitoring.models import PredictionLog
from registry import services

pytestmark = pytest.mark.django_db(transaction=True)


def test_generated_traffic_replays_into_the_api_idempotently(
    approved, approver, soc_service, live_server, tmp_path
):
    champion = services.version_transition(
        version=approved("1.0.0"), to="production", actor=approver
    )
    shadow = approved("1.1.0")
    out = tmp_path / "traffic.jsonl"
    call_command(
        "traffic",
        "generate",
        "--events",
        "400",
        "--days",
        "2",
        "--shadow",
        "1.1.0",
        "--drift",
        "bytes_out:sudden:2:0.5",
        "--verdict-share",
        "0.5",
        "--out",
        str(out),
        "--model",
        "threat",
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 800
    assert {line["item"]["role"] for line in lines} == {"champion", "shadow"}
    _, token = AuthToken.objects.create(user=soc_service, expiry=None)
    args = [
        "traffic",
        "replay",
        str(out),
        "--url",
        live_server.url,
        "--token",
        token,
        "--batch",
        "300",
    ]
    call_command(*args)
    assert PredictionLog.objects.filter(version=champion).count() == 400
    assert PredictionLog.objects.filter(version=shadow, role="shadow").count() == 400
    verdicts = sum(1 for line in lines if line["verdict"] is not None)
    assert verdicts > 0
    # a verdict on an incident labels both versions' rows
    assert PredictionLog.objects.exclude(label=None).count() == 2 * verdicts
    call_command(*args)  # a replay (e.g. after a timeout) stores nothing twice
    assert PredictionLog.objects.count() == 800


def test_a_bad_drift_spec_is_refused(approved, approver):
    from django.core.management import CommandError

    services.version_transition(version=approved(), to="production", actor=approver)
    with pytest.raises(CommandError, match="bad drift"):
        call_command(
            "traffic",
            "generate",
            "--model",
            "threat",
            "--drift",
            "bytes_out:wobbly",
            "--out",
            "/dev/null",
        )
