"""Register an existing XGBoost artifact (JSON/UBJSON) with its metadata and evaluation set."""

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from registry.services import GovernanceError, model_version_register


class Command(BaseCommand):
    help = "Register a trained model file: --artifact, --metadata (JSON), optional --evaluation."

    def add_arguments(self, parser):
        parser.add_argument("model", help="model name (slug); created if new")
        parser.add_argument("semver", help="semantic version, e.g. 1.2.0")
        parser.add_argument("--artifact", required=True, help="XGBoost .json or .ubj file")
        parser.add_argument(
            "--metadata",
            required=True,
            help="JSON file: feature_schema (required), metrics, hyperparameters, model card",
        )
        parser.add_argument("--evaluation", help=".npz held-out set: X, y, group attributes")
        parser.add_argument("--as-user", required=True, help="username recorded as registrant")

    def handle(self, *args, model, semver, artifact, metadata, evaluation, as_user, **options):
        user = get_user_model().objects.filter(username=as_user).first()
        if user is None or not user.has_perm("registry.register_version"):
            raise CommandError(f"{as_user!r} does not exist or may not register versions")
        try:
            meta = json.loads(Path(metadata).read_text())
            version = model_version_register(
                model_name=model,
                version=semver,
                artifact=Path(artifact).read_bytes(),
                metadata=meta,
                evaluation=Path(evaluation).read_bytes() if evaluation else None,
                registered_by=user,
            )
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        except GovernanceError as exc:
            raise CommandError(f"registration refused: {exc.message} {exc.details or ''}") from None
        self.stdout.write(
            self.style.SUCCESS(f"registered {version} (SHA-256 {version.model_hash})")
        )
