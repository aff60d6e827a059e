"""``/metrics`` in the Prometheus text exposition format (version 0.0.4).

Access: a bearer token (``METRICS_TOKEN``), a client address inside
``METRICS_ALLOWED_NETWORKS`` (default loopback only; behind ``PROXY_COUNT`` proxies, the
address they forwarded), or a signed-in person who may
view monitoring. Everything is read from stored results plus one grouped count of
the prediction log; no drift statistic is computed here.
"""

import hmac
import ipaddress
import math

from django.conf import settings
from django.db.models import Count, Sum
from django.http import HttpResponse
from django.urls import path
from django.views.decorators.http import require_GET

from monitoring.models import (
    Alert,
    DetectorState,
    DriftResult,
    DriftRun,
    PerformanceResult,
    PredictionLog,
)
from registry.models import MLModelVersion

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FEATURE_STATS = {
    "psi": "Population stability index of the latest window",
    "ks_statistic": "Kolmogorov-Smirnov statistic of the latest window",
    "wasserstein_norm": "Wasserstein-1 distance over the reference std, latest window",
    "js_distance": "Jensen-Shannon distance (base 2) of the latest window",
}


class Exposition:
    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples) -> None:
        samples = list(samples)
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    parts = []
    for key, value in labels.items():
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{key}="{escaped}"')
    return "{" + ",".join(parts) + "}"


def _number(value) -> str:
    if value is None:
        return "NaN"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _client_address(request) -> str:
    """The address the network rule checks. Behind PROXY_COUNT reverse proxies the
    connection comes from the nearest proxy (often loopback), so the client is the
    address the outermost trusted proxy appended to X-Forwarded-For; earlier entries are
    the client's to forge, and too few entries mean none can be trusted."""
    count = settings.PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if count <= 0 or forwarded is None:
        return request.META.get("REMOTE_ADDR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-count] if len(hops) >= count else ""


def allowed(request) -> tuple[bool, int]:
    """(allowed, status to answer otherwise)."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[7:].strip().encode(), token.encode()), 401
    if request.user.is_authenticated and request.user.has_perm("monitoring.view_monitoring"):
        return True, 403
    try:
        client = ipaddress.ip_address(_client_address(request))
    except ValueError:
        return False, 403
    for network in settings.METRICS_ALLOWED_NETWORKS:
        if client in ipaddress.ip_network(network, strict=False):
            return True, 403
    return False, 401 if token else 403


@require_GET
def metrics(request):
    ok, refusal = allowed(request)
    if not ok:
        response = HttpResponse("forbidden\n", status=refusal, content_type="text/plain")
        if refusal == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    out = Exposition()
    _drift(out)
    _performance(out)
    _alerts(out)
    _ingest(out)
    _jobs(out)
    return HttpResponse(out.text(), content_type=CONTENT_TYPE)


def latest_results() -> list[DriftResult]:
    """Latest stored window of every non-archived version."""
    versions = MLModelVersion.objects.exclude(status=MLModelVersion.Status.ARCHIVED)
    latest = []
    for version in versions.select_related("model"):
        result = (
            DriftResult.objects.filter(version=version, status="ok").order_by("-window_end").first()
        )
        if result is not None:
            result.version = version
            latest.append(result)
    return latest


def _drift(out: Exposition) -> None:
    results = latest_results()

    def base(r):
        return {"model": r.version.model.name, "version": r.version.version}

    for stat, help_text in FEATURE_STATS.items():
        out.family(
            f"govsite_drift_{stat}",
            "gauge",
            help_text + ', per feature (the model score is feature="score").',
            (
                ({**base(r), "feature": name}, f["statistics"][stat])
                for r in results
                for name, f in r.features.items()
                if f.get("status") == "ok" and stat in f.get("statistics", {})
            ),
        )
    out.family(
        "govsite_drift_p_adjusted",
        "gauge",
        "Multiple-testing adjusted p-value of the latest window, per feature.",
        (
            ({**base(r), "feature": name}, f.get("p_adjusted"))
            for r in results
            for name, f in r.features.items()
            if f.get("status") == "ok"
        ),
    )
    out.family(
        "govsite_drift_feature_drifted",
        "gauge",
        "1 when the feature drifted in the latest window.",
        (
            ({**base(r), "feature": name}, 1 if f.get("drifted") else 0)
            for r in results
            for name, f in r.features.items()
            if f.get("status") == "ok"
        ),
    )
    out.family(
        "govsite_drift_dataset_drift",
        "gauge",
        "1 when the latest window drifted as a whole.",
        ((base(r), 1 if r.drift else 0) for r in results),
    )
    out.family(
        "govsite_drift_window_end_timestamp_seconds",
        "gauge",
        "End of the latest window with a drift verdict.",
        ((base(r), r.window_end.timestamp()) for r in results),
    )
    out.family(
        "govsite_drift_window_rows",
        "gauge",
        "Predictions in the latest window with a drift verdict.",
        ((base(r), r.n_rows) for r in results),
    )
    states = DetectorState.objects.select_related("version__model")
    out.family(
        "govsite_score_changes_total",
        "counter",
        "Page-Hinkley changes of the mean score signalled so far.",
        (
            ({"model": s.version.model.name, "version": s.version.version}, s.changes)
            for s in states
        ),
    )


def _performance(out: Exposition) -> None:
    rows = []
    for version in MLModelVersion.objects.exclude(status="archived").select_related("model"):
        result = (
            PerformanceResult.objects.filter(version=version, status="ok")
            .order_by("-window_end")
            .first()
        )
        if result is not None:
            rows.append((version, result))
    labels = [({"model": v.model.name, "version": v.version}, r) for v, r in rows]
    out.family(
        "govsite_performance",
        "gauge",
        "Latest labelled-feedback metric (precision, recall, f1, auc).",
        (
            ({**lab, "metric": m}, getattr(r, m))
            for lab, r in labels
            for m in ("precision", "recall", "f1", "auc")
        ),
    )
    out.family(
        "govsite_performance_labels",
        "gauge",
        "Labels behind the latest performance measurement.",
        ((lab, r.n_labels) for lab, r in labels),
    )


def _alerts(out: Exposition) -> None:
    counts = (
        Alert.objects.filter(status__in=Alert.ACTIVE)
        .values("model__name", "severity", "status")
        .annotate(n=Count("id"))
    )
    out.family(
        "govsite_alerts_active",
        "gauge",
        "Open and acknowledged alerts by model, severity and status.",
        (
            ({"model": c["model__name"], "severity": c["severity"], "status": c["status"]}, c["n"])
            for c in counts
        ),
    )


def _ingest(out: Exposition) -> None:
    counts = list(
        PredictionLog.objects.values("version__model__name", "version__version", "role")
        .annotate(n=Count("id"), labelled=Count("label"))
        .order_by()
    )
    out.family(
        "govsite_predictions_logged_total",
        "counter",
        "Predictions logged, by model, version and serving role.",
        (
            (
                {
                    "model": c["version__model__name"],
                    "version": c["version__version"],
                    "role": c["role"],
                },
                c["n"],
            )
            for c in counts
        ),
    )
    out.family(
        "govsite_predictions_labelled_total",
        "counter",
        "Logged predictions with an analyst verdict, by model, version and role.",
        (
            (
                {
                    "model": c["version__model__name"],
                    "version": c["version__version"],
                    "role": c["role"],
                },
                c["labelled"],
            )
            for c in counts
        ),
    )


def _jobs(out: Exposition) -> None:
    runs = list(
        DriftRun.objects.values("model__name", "status")
        .annotate(n=Count("id"), seconds=Sum("duration_seconds"))
        .order_by()
    )
    out.family(
        "govsite_drift_runs_total",
        "counter",
        "Drift runs by model and status.",
        (({"model": r["model__name"], "status": r["status"]}, r["n"]) for r in runs),
    )
    done = [r for r in runs if r["status"] == DriftRun.Status.SUCCEEDED]
    out.lines += [
        "# HELP govsite_drift_run_duration_seconds Wall time of succeeded drift runs.",
        "# TYPE govsite_drift_run_duration_seconds summary",
    ]
    for r in done:
        labels = _labels({"model": r["model__name"]})
        out.lines.append(f"govsite_drift_run_duration_seconds_sum{labels} {_number(r['seconds'])}")
        out.lines.append(f"govsite_drift_run_duration_seconds_count{labels} {r['n']}")
    latest = {
        r["model__name"]: DriftRun.objects.filter(
            model__name=r["model__name"], status=DriftRun.Status.SUCCEEDED
        )
        .order_by("-finished_at")
        .values_list("duration_seconds", flat=True)
        .first()
        for r in done
    }
    out.family(
        "govsite_drift_last_run_duration_seconds",
        "gauge",
        "Wall time of the latest succeeded drift run.",
        (({"model": name}, seconds) for name, seconds in latest.items()),
    )


urlpatterns = [path("metrics", metrics, name="metrics")]
