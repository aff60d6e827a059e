"""Run drift and performance windows of a model now, with a progress bar."""

from datetime import UTC

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from monitoring.drift_jobs import drift_run_create, drift_run_execute
from monitoring.models import Alert, DriftResult, DriftRun
from monitoring.schedules import drift_schedules_sync
from registry.models import MLModel
from registry.services import GovernanceError


def _moment(value: str | None, name: str):
    if value is None:
        return None
    moment = parse_datetime(value)
    if moment is None:
        raise CommandError(f"--{name} must be an ISO date-time, e.g. 2026-03-02T00:00:00Z")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Compute drift and performance for every window of [--start, --end) (default: the last "
        "24 complete windows) of each version of MODEL that logged predictions, in this "
        "process; --queue hands the run to a Celery worker instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", help="model name, e.g. threat-detector")
        parser.add_argument("--start", help="ISO date-time (UTC when no offset is given)")
        parser.add_argument("--end", help="ISO date-time, exclusive")
        parser.add_argument("--queue", action="store_true", help="run on a worker, do not wait")
        parser.add_argument(
            "--sync-schedules", action="store_true", help="also create the beat schedules"
        )

    def handle(self, *args, **o):
        model = MLModel.objects.filter(name=o["model"]).first()
        if model is None:
            raise CommandError(f"no model named {o['model']!r}")
        if o["sync_schedules"]:
            self.stdout.write(f"{len(drift_schedules_sync())} drift schedule(s) in place")
        try:
            run = drift_run_create(
                model=model,
                start=_moment(o["start"], "start"),
                end=_moment(o["end"], "end"),
                trigger=DriftRun.Trigger.CLI,
                enqueue=o["queue"],
            )
        except GovernanceError as exc:
            raise CommandError(exc.message) from None
        if o["queue"]:
            self.stdout.write(f"run #{run.pk} queued ({run.windows_total} windows)")
            return
        with tqdm(desc="drift windows", unit="window", disable=o["verbosity"] == 0) as bar:

            def progress(done, total):
                bar.total = total
                bar.update(done - bar.n)

            run = drift_run_execute(run_id=run.pk, progress=progress)
        self.stdout.write(self.summary(run))

    def summary(self, run: DriftRun) -> str:
        results = DriftResult.objects.filter(run=run)
        drifted = results.filter(drift=True).count()
        active = Alert.objects.filter(model=run.model, status__in=Alert.ACTIVE).count()
        return (
            f"run #{run.pk} {run.status}: {run.windows_done} window(s), {run.rows_read} "
            f"predictions in {run.duration_seconds:.1f}s; {drifted} window(s) with drift; "
            f"{active} active alert(s) for {run.model.name}"
        )
