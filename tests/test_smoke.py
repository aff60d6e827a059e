"""The embedded default, run as scripts/run does: migrate + demo on a fresh SQLite file,
then web server, worker and beat; fetch pages; stop."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_the_embedded_default_starts_with_demo_data_and_serves_pages(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    env["GOVSITE_VAR_DIR"] = str(tmp_path)
    manage = [sys.executable, "manage.py"]
    subprocess.run(manage + ["migrate", "--no-input", "-v0"], env=env, check=True, timeout=300)
    demo = subprocess.run(
        manage + ["demo", "-v0"], env=env, capture_output=True, text=True, timeout=600
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "alex   Approver" in demo.stdout and "API token" in demo.stdout
    assert (tmp_path / "govsite.sqlite3").exists()
    port = free_port()
    server = subprocess.Popen(
        manage + ["serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                status, body = fetch(base + "/")
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()[-3000:]
                assert time.monotonic() < deadline, "server did not come up in 90 s"
                time.sleep(0.5)
        assert status == 200 and b"Model governance for SOC threat detection" in body
        status, schema = fetch(base + "/api/schema/?format=json")
        assert status == 200 and b'"openapi"' in schema
        status, css = fetch(base + "/static/css/site.css")
        assert status == 200
        status, plotly = fetch(base + "/static/plotly/plotly.min.js")
        assert status == 200 and len(plotly) > 1_000_000
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            raise
    assert server.returncode == 0
