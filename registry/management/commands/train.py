"""Train a real XGBoost threat model on generated SOC events and register it."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from registry import synthetic
from registry.registration import register_training_result
from registry.services import GovernanceError
from registry.training import train


class Command(BaseCommand):
    help = "Train on synthetic SOC events (train/validation split) and register the version."

    def add_arguments(self, parser):
        parser.add_argument("--model", default="threat-detector")
        parser.add_argument("--semver", required=True, help="semantic version, e.g. 1.0.0")
        parser.add_argument("--events", type=int, default=60_000)
        parser.add_argument("--rounds", type=int, default=200)
        parser.add_argument("--max-depth", type=int, default=5)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--region-proxy",
            type=float,
            default=0.0,
            help="strength (0-1) of the region-correlated benign proxy in the training data",
        )
        parser.add_argument("--as-user", default=None, help="username recorded as registrant")
        parser.add_argument("--format", choices=["json", "ubj"], default="json")
        parser.add_argument(
            "--no-register", action="store_true", help="only train and write --output"
        )
        parser.add_argument("--output", default=None, help="also write the artifact here")

    def handle(self, *args, **o):
        events = synthetic.generate(
            o["events"],
            seed=o["seed"],
            scenario=synthetic.Scenario(region_proxy=o["region_proxy"]),
        )
        with tqdm(
            total=o["rounds"], desc="boosting rounds", unit="round", disable=o["verbosity"] == 0
        ) as bar:
            result = train(
                events,
                num_boost_round=o["rounds"],
                seed=o["seed"],
                params={"max_depth": o["max_depth"]},
                progress=lambda i, total: bar.update(1),
            )
        m = result.metrics
        self.stdout.write(
            f"trained on {result.training_samples} events in "
            f"{result.training_duration_seconds:.1f}s;"
            f" validation ({result.validation_samples} events): precision {m['precision']:.3f}, "
            f"recall {m['recall']:.3f}, F1 {m['f1']:.3f}, AUC {m['auc']:.3f} at threshold "
            f"{result.threshold:.3f}"
        )
        if o["output"]:
            sha = result.save_artifact(o["output"])
            self.stdout.write(f"wrote {o['output']} (SHA-256 {sha})")
        if o["no_register"]:
            return
        user = None
        if o["as_user"]:
            user = get_user_model().objects.filter(username=o["as_user"]).first()
            if user is None:
                raise CommandError(f"no user {o['as_user']!r}")
        try:
            version = register_training_result(
                result=result,
                model_name=o["model"],
                version=o["semver"],
                registered_by=user,
                fmt=o["format"],
            )
        except GovernanceError as exc:
            raise CommandError(f"registration refused: {exc.message} {exc.details or ''}") from None
        self.stdout.write(self.style.SUCCESS(f"registered {version} (status {version.status})"))
