"""Explain the backlog of high-risk predictions, in vectorised batches, with a progress bar."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from explain.services import explanations_precompute, high_risk_predictions
from monitoring.models import PredictionLog
from registry.models import MLModel


class Command(BaseCommand):
    help = (
        "Precompute SHAP explanations for logged predictions at or above their model's "
        "explain_threshold (or every prediction with --all). Safe to run again: cached "
        "explanations are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="only this model (name)")
        parser.add_argument("--model-version", help="only this version of --model (semver)")
        parser.add_argument("--since", help="only predictions at or after this ISO datetime")
        parser.add_argument("--all", action="store_true", help="ignore the risk threshold")
        parser.add_argument("--batch-size", type=int, default=settings.EXPLAIN_BATCH_SIZE)

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        rows = self._rows(options)
        total = rows.count()
        with tqdm(
            total=total, desc="explaining", unit="row", disable=options["verbosity"] == 0
        ) as bar:
            report = explanations_precompute(
                predictions=rows, batch_size=options["batch_size"], progress=bar.update
            )
        self.stdout.write(
            f"scanned {report.scanned} predictions, computed {report.explained} new "
            f"explanations in {report.batches} batches"
        )

    def _rows(self, options):
        model = None
        if options["model"]:
            model = MLModel.objects.filter(name=options["model"]).first()
            if model is None:
                raise CommandError(f"no model named {options['model']!r}")
        rows = PredictionLog.objects.all() if options["all"] else high_risk_predictions()
        if model is not None:
            rows = rows.filter(version__model=model)
        if options["model_version"]:
            if model is None:
                raise CommandError("--model-version needs --model")
            if not model.versions.filter(version=options["model_version"]).exists():
                raise CommandError(f"{model.name} has no version {options['model_version']!r}")
            rows = rows.filter(version__version=options["model_version"])
        if options["since"]:
            since = parse_datetime(options["since"])
            if since is None:
                raise CommandError("--since must be an ISO datetime, e.g. 2026-01-06T00:00:00Z")
            rows = rows.filter(created_at__gte=since)
        return rows
