"""Generate scored SOC traffic to a JSON-lines file, or replay such a file into the API."""

import json
import time
import urllib.error
import urllib.request

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from monitoring.traffic_generator import parse_drift, traffic_generate, verdicts_choose
from registry.models import MLModel


class Command(BaseCommand):
    help = "traffic generate --out FILE ... | traffic replay FILE --url URL --token TOKEN"

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        gen = sub.add_parser("generate", help="score synthetic events with registered versions")
        gen.add_argument("--model", default="threat-detector")
        gen.add_argument("--shadow", action="append", default=[], help="shadow version(s)")
        gen.add_argument("--events", type=int, default=10_000)
        gen.add_argument("--days", type=float, default=7.0)
        gen.add_argument("--seed", type=int, default=0)
        gen.add_argument(
            "--drift",
            action="append",
            default=[],
            help="feature:sudden:mag:at or feature:gradual:mag:start:end",
        )
        gen.add_argument(
            "--verdict-share",
            type=float,
            default=0.3,
            help="share of flagged incidents that get an analyst verdict",
        )
        gen.add_argument("--out", required=True)
        rep = sub.add_parser("replay", help="POST a generated file to the API in batches")
        rep.add_argument("file")
        rep.add_argument("--url", default="http://127.0.0.1:8000")
        rep.add_argument("--token", required=True, help="a SOC service account token")
        rep.add_argument("--batch", type=int, default=1000)

    def handle(self, *args, **o):
        if o["action"] == "generate":
            self._generate(o)
        else:
            self._replay(o)

    def _generate(self, o):
        model = MLModel.objects.filter(name=o["model"]).first()
        serving = model.production_version() if model else None
        if serving is None:
            raise CommandError(f"{o['model']} has no production version to score with")
        try:
            drifts = [parse_drift(d) for d in o["drift"]]
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        shadows = list(model.versions.filter(version__in=o["shadow"]))
        traffic = traffic_generate(
            serving=serving,
            shadows=shadows,
            events=o["events"],
            days=o["days"],
            seed=o["seed"],
            drifts=drifts,
        )
        verdicts = verdicts_choose(
            traffic,
            threshold=serving.decision_threshold,
            flagged_share=o["verdict_share"],
            other_share=o["verdict_share"] / 20,
            seed=o["seed"],
        )
        with open(o["out"], "w") as fh:
            for item in traffic.items:
                label = verdicts.get(item["incident_id"]) if item["role"] == "champion" else None
                fh.write(json.dumps({"item": item, "verdict": label}) + "\n")
        self.stdout.write(
            f"wrote {len(traffic.items)} predictions and {len(verdicts)} verdicts to {o['out']}"
        )

    def _replay(self, o):
        with open(o["file"]) as fh:
            lines = [json.loads(line) for line in fh if line.strip()]
        items = [line["item"] for line in lines]
        verdicts = [
            {"incident_id": line["item"]["incident_id"], "label": line["verdict"]}
            for line in lines
            if line.get("verdict") is not None
        ]
        totals = {"accepted": 0, "duplicates": 0}
        with tqdm(total=len(items), desc="predictions", unit="item") as bar:
            for start in range(0, len(items), o["batch"]):
                body = {"predictions": items[start : start + o["batch"]]}
                result = self._post(o, "/api/v1/predictions/", body)
                totals["accepted"] += result["accepted"]
                totals["duplicates"] += result["duplicates"]
                bar.update(len(body["predictions"]))
        with tqdm(total=len(verdicts), desc="verdicts", unit="item") as bar:
            for start in range(0, len(verdicts), 1000):
                self._post(o, "/api/v1/feedback/", {"verdicts": verdicts[start : start + 1000]})
                bar.update(len(verdicts[start : start + 1000]))
        self.stdout.write(
            f"accepted {totals['accepted']}, duplicates {totals['duplicates']}, "
            f"verdicts {len(verdicts)}"
        )

    def _post(self, o, path, body, attempts=5):
        """POST with retries: the request ids make a retried batch safe to send again."""
        data = json.dumps(body).encode()
        for attempt in range(attempts):
            request = urllib.request.Request(
                o["url"].rstrip("/") + path,
                data=data,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Token {o['token']}",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    raise CommandError(f"{path}: {exc.code} {exc.read()[:2000]!r}") from None
            except OSError:
                pass
            time.sleep(min(2**attempt, 30))
        raise CommandError(f"{path}: no success after {attempts} attempts")
