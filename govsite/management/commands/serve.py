"""Run the web server, a Celery worker and Celery beat together until interrupted."""

import os
import signal
import subprocess
import sys
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start gunicorn, a Celery worker and beat as child processes (the embedded default)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--no-worker", action="store_true", help="web server only")

    def handle(self, *args, host, port, web_workers, no_worker, **options):
        call_command("collectstatic", interactive=False, verbosity=0)
        py = sys.executable
        commands = {
            "web": [
                py,
                "-m",
                "gunicorn",
                "govsite.wsgi:application",
                "--bind",
                f"{host}:{port}",
                "--workers",
                str(web_workers),
                "--access-logfile",
                "-",
                "--timeout",
                "120",
            ],
        }
        if not no_worker:
            commands["worker"] = [
                py,
                "-m",
                "celery",
                "-A",
                "govsite",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
            ]
            commands["beat"] = [
                py,
                "-m",
                "celery",
                "-A",
                "govsite",
                "beat",
                "--loglevel",
                "INFO",
            ]
        procs = {
            name: subprocess.Popen(cmd, env=os.environ.copy()) for name, cmd in commands.items()
        }
        self.stdout.write(self.style.SUCCESS(f"govsite is running at http://{host}:{port}/"))
        self.stdout.write(f"started: {', '.join(procs)} (Ctrl-C stops all)")
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                dead = [n for n, p in procs.items() if p.poll() is not None]
                if dead:
                    self.stderr.write(f"{', '.join(dead)} exited; stopping the rest")
                    break
                time.sleep(0.5)
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.terminate()
            for p in procs.values():
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
