"""Build demo data (idempotent): people in every role, a service token, a trained model with
one version in production and one waiting for approval, and their fairness audits."""

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from knox.models import AuthToken
from tqdm import tqdm

from core import roles
from experiments import demo as demo_ab
from explain import demo as explain_demo
from fairness import demo as fairness_demo
from fairness.services import fairness_audit_create, fairness_audit_execute_now
from monitoring import demo as monitoring_demo
from monitoring.models import PredictionLog
from monitoring.traffic_generator import (
    DEMO_DRIFTS,
    traffic_generate,
    traffic_load,
    verdicts_choose,
    verdicts_record,
)
from registry import services, synthetic
from registry.models import MLModel
from registry.policy import policy_change_confirm, policy_update
from registry.registration import register_training_result
from registry.training import train

MODEL = "threat-detector"
PEOPLE = [
    ("mira", roles.ML_ENGINEER),
    ("alex", roles.APPROVER),
    ("sam", roles.APPROVER),
    ("ana", roles.ANALYST),
    ("otto", roles.AUDITOR),
]
SERVICE = "soc-backend"
# 1.0.0 learned from data with a region-correlated benign proxy (VPN-like travel in
# APAC); 1.1.0 was retrained without it.
VERSIONS = [("1.0.0", 0.25, 1), ("1.1.0", 0.0, 2)]


class Command(BaseCommand):
    help = "Create or complete the demo data; safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--events", type=int, default=60_000)
        parser.add_argument("--rounds", type=int, default=150)
        parser.add_argument(
            "--traffic",
            type=int,
            default=30_000,
            help="events in the demo's week of logged traffic",
        )

    def handle(self, *args, events, rounds, traffic, **options):
        traffic_events = traffic
        self.quiet = options["verbosity"] == 0
        self._refuse_a_real_deployment()
        password = os.environ.get("DEMO_PASSWORD", "govsite-demo")
        users = {name: self._person(name, role, password) for name, role in PEOPLE}
        token = self._service_token()
        for semver, proxy, seed in VERSIONS:
            self._version(semver, proxy, seed, events, rounds, users)
        self._traffic(users, traffic_events)
        self._app_demos()
        self._print_logins(password, token)

    def _refuse_a_real_deployment(self):
        """The demo makes two approvers with a known password and changes the demo model's
        policy: never on a database with other people in it (one person holding both
        approvers would defeat the two-person rules). A database the demo built already
        is its own, whatever accounts were added to it since."""
        User = get_user_model()
        people = [name for name, _ in PEOPLE]
        if User.objects.filter(username__in=people).count() == len(people):
            return  # a demo database already: a re-run only refreshes the service token
        others = User.objects.exclude(username__in=[*people, SERVICE])
        if others.exists():
            names = ", ".join(others.values_list("username", flat=True)[:5])
            raise CommandError(
                "the demo runs only on a database of its own: it would add approvers with a "
                f"known password beside real accounts ({names}...)"
            )

    def _person(self, username, role, password):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"email": f"{username}@soc.example", "is_staff": role in roles.STAFF_ROLES},
        )
        if created:
            user.set_password(password)
            user.save()
            user.groups.add(Group.objects.get(name=role))
        return user

    def _service_token(self) -> str:
        User = get_user_model()
        user, created = User.objects.get_or_create(username=SERVICE)
        if created:
            user.set_unusable_password()
            user.save()
            user.groups.add(Group.objects.get(name=roles.SOC_SERVICE))
        # A fresh token each run: the old one cannot be shown again (only its hash is kept).
        AuthToken.objects.filter(user=user).delete()
        _, token = AuthToken.objects.create(user=user, expiry=None)
        return token

    def _train(self, semver, proxy, seed, events, rounds):
        data = synthetic.generate(
            events, seed=seed, scenario=synthetic.Scenario(region_proxy=proxy)
        )
        with tqdm(total=rounds, desc=f"training {semver}", disable=self.quiet) as bar:
            return train(
                data, num_boost_round=rounds, seed=seed, progress=lambda i, total: bar.update(1)
            )

    def _version(self, semver, proxy, seed, events, rounds, users):
        model = MLModel.objects.filter(name=MODEL).first()
        if model and model.versions.filter(version=semver).exists():
            return
        result = self._train(semver, proxy, seed, events, rounds)
        version = register_training_result(
            result=result,
            model_name=MODEL,
            version=semver,
            registered_by=users["mira"],
            description="Gradient-boosted threat scorer for SOC events.",
        )

        for to in ("testing", "staging"):
            services.version_transition(version=version, to=to, actor=users["mira"])
        if semver == "1.0.0":
            self._ship_first(version, users)
        else:
            self._request_approval(version, users)
        version.refresh_from_db()
        self.stdout.write(f"registered {version} ({version.status})")

    def _ship_first(self, version, users):
        """History: 1.0.0 shipped before the fairness gate existed; its audit afterwards found
        the APAC false-positive gap that 1.1.0 fixes."""

        model = version.model
        # Turning the gate off weakens the policy: alex proposes, sam confirms.
        proposal = policy_update(
            model=model,
            new={"fairness_gate": False},
            actor=users["alex"],
            notes="1.0.0 predates the fairness gate.",
        )
        policy_change_confirm(proposal=proposal, actor=users["sam"])
        services.approval_request_create(
            version=version, actor=users["mira"], notes="First production model."
        )
        request = version.approval_requests.get()
        services.approval_decide(
            request=request,
            approver=users["alex"],
            decision="approve",
            notes="Metrics meet the policy.",
        )
        version.refresh_from_db()
        services.version_transition(version=version, to="production", actor=users["alex"])
        audit = fairness_audit_create(version=version, requested_by=users["otto"])
        fairness_audit_execute_now(audit_id=audit.pk)
        # Strengthening takes effect at once.
        policy_update(model=model, new={"fairness_gate": True, "min_auc": 0.8}, actor=users["alex"])

    def _request_approval(self, version, users):

        services.approval_request_create(
            version=version,
            actor=users["mira"],
            notes="Retrained without the travel-velocity proxy that raised APAC false positives.",
        )
        # The worker would run it; run it here so the demo is complete before start-up.
        for audit in version.fairness_audits.filter(status="pending"):
            fairness_audit_execute_now(audit_id=audit.pk)

    def _traffic(self, users, events):
        """A week of traffic ending now: 1.0.0 serves, 1.1.0 scores in shadow; from mid-week
        bytes_out jumps and geo_velocity creeps up; analysts review part of the incidents."""

        model = MLModel.objects.get(name=MODEL)
        if PredictionLog.objects.filter(version__model=model).exists():
            return
        serving = model.versions.get(version="1.0.0")
        shadow = model.versions.get(version="1.1.0")
        traffic = traffic_generate(
            serving=serving,
            shadows=[shadow],
            events=events,
            seed=11,
            drifts=DEMO_DRIFTS,
            region_proxy=0.25,
        )
        with tqdm(total=len(traffic.items), desc="logging traffic", disable=self.quiet) as bar:
            traffic_load(traffic=traffic, progress=lambda done: bar.update(done - bar.n))
        verdicts = verdicts_choose(
            traffic,
            threshold=serving.decision_threshold,
            flagged_share=0.6,
            other_share=0.03,
            seed=11,
        )
        verdicts_record(verdicts=verdicts, user=users["ana"])
        self.stdout.write(f"logged {len(traffic.items)} predictions, {len(verdicts)} verdicts")

    def _app_demos(self):
        """Each app's demo step: drift and performance jobs over the week (with alerts),
        explanations of the high-risk incidents, audits on logged data, the experiment."""

        for step in (monitoring_demo, explain_demo, fairness_demo, demo_ab):
            step.build(stdout=self.stdout)

    def _print_logins(self, password, token):
        self.stdout.write(self.style.SUCCESS(f"\nDemo logins (password for all: {password})"))
        for name, role in PEOPLE:
            self.stdout.write(f"  {name:<6} {role}")
        self.stdout.write(f"SOC service account {SERVICE!r} API token (new each run):\n  {token}")
