"""Run a fairness audit of a version from the command line, with a progress bar.

    manage.py fairness_audit threat-detector 1.0.0
    manage.py fairness_audit threat-detector 1.0.0 --source logged \
        --start 2025-01-06 --end 2025-01-13 --attributes geo_region
    manage.py fairness_audit threat-detector 1.0.0 --queue   # a worker runs it

By default the audit runs in this process; `--queue` hands it to the Celery
workers and follows the progress they store on the audit.
"""

import time
from datetime import UTC, datetime
from datetime import time as dtime

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from fairness.models import FairnessAudit
from fairness.services import (
    AuditInputError,
    fairness_audit_check_data,
    fairness_audit_create,
    fairness_audit_execute_now,
)
from registry.models import MLModelVersion


def _moment(value: str | None, name: str):
    """An ISO date (midnight UTC) or datetime (naive means UTC)."""
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None and (day := parse_date(value)) is not None:
        parsed = datetime.combine(day, dtime.min)
    if parsed is None:
        raise CommandError(f"--{name} must be an ISO date or datetime, got {value!r}")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


class Command(BaseCommand):
    help = "Audit a model version for fairness (evaluation set or logged predictions)."

    def add_arguments(self, parser):
        parser.add_argument("model")
        parser.add_argument("version")
        parser.add_argument("--source", choices=FairnessAudit.Source.values, default="evaluation")
        parser.add_argument("--start", help="logged source: first event time (ISO, UTC)")
        parser.add_argument("--end", help="logged source: end of the period, exclusive")
        parser.add_argument("--attributes", default="geo_region", help="comma-separated")
        parser.add_argument("--user", help="username recorded as the requester")
        parser.add_argument("--queue", action="store_true", help="let a worker run it")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to follow")

    def handle(self, *args, **options):
        version = MLModelVersion.objects.filter(
            model__name=options["model"], version=options["version"]
        ).first()
        if version is None:
            raise CommandError(f"{options['model']} {options['version']} is not registered")
        params = {
            "source": options["source"],
            "attributes": [a.strip() for a in options["attributes"].split(",") if a.strip()],
            "period_start": _moment(options["start"], "start"),
            "period_end": _moment(options["end"], "end"),
        }
        try:
            fairness_audit_check_data(version=version, **params)
            audit = fairness_audit_create(
                version=version,
                requested_by=self._user(options["user"]),
                enqueue=options["queue"],
                **params,
            )
        except AuditInputError as exc:
            raise CommandError(exc.message) from None
        quiet = options["verbosity"] == 0
        if options["queue"]:
            audit = self._follow(audit, options["timeout"], quiet)
        else:
            audit = self._run(audit, quiet)
        self._report(audit)

    def _user(self, username):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        return user

    def _bar_file(self):
        # The raw stream: OutputWrapper would add a newline to every redraw.
        return self.stderr._out

    def _run(self, audit, quiet):
        with tqdm(
            total=100, desc=f"audit #{audit.pk}", unit="%", disable=quiet, file=self._bar_file()
        ) as bar:

            def progress(done, total):
                bar.update(int(100 * done / total) - bar.n)

            result = fairness_audit_execute_now(audit_id=audit.pk, progress=progress)
            bar.update(100 - bar.n)
        return result or FairnessAudit.objects.get(pk=audit.pk)

    def _follow(self, audit, timeout, quiet):
        deadline = time.monotonic() + timeout
        with tqdm(
            total=100,
            desc=f"audit #{audit.pk} (worker)",
            unit="%",
            disable=quiet,
            file=self._bar_file(),
        ) as bar:
            while True:
                audit.refresh_from_db()
                bar.update(int(100 * audit.progress) - bar.n)
                if audit.is_final:
                    return audit
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"audit #{audit.pk} is still {audit.status}; is a worker up?"
                    )
                time.sleep(0.5)

    def _report(self, audit):
        if audit.status == FairnessAudit.Status.FAILED:
            raise CommandError(f"audit #{audit.pk} failed: {audit.reasons[0]['message']}")
        style = self.style.SUCCESS if audit.verdict == "pass" else self.style.WARNING
        self.stdout.write(style(f"audit #{audit.pk} of {audit.version}: {audit.verdict}"))
        for reason in audit.reasons:
            if reason.get("severity") in ("fail", "inconclusive", "advisory"):
                self.stdout.write(f"  {reason['severity']}: {reason['message']}")
        self.stdout.write(f"  /fairness/audits/{audit.pk}/")
