"""Drift jobs: read a window of logged predictions, compare with the reference, store, alert.

A run (``DriftRun``) covers a range of windows of one model, for every version
that logged predictions in that range. Per (version, window) it

1. reads the window's feature bytes and scores in one query (PostgreSQL
   concatenates them server-side, so a million rows arrive as two byte strings
   that become numpy arrays with one ``frombuffer`` each),
2. compares them with the version's reference profile (``drift_core.compare``,
   features and the score) and upserts a ``DriftResult``,
3. streams the scores through the version's Page-Hinkley detector, whose state
   lives in ``DetectorState`` (fed once per window, in window order),
4. measures performance on labelled feedback (``monitoring.performance``),
5. raises or clears alerts.

Re-running a window replaces its results, so runs are idempotent per window.
"""

import functools
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.queue import enqueue_on_commit
from monitoring import drift_core
from monitoring.alerts import alert_clear, alert_raise
from monitoring.models import (
    DetectorState,
    DriftResult,
    DriftRun,
    PerformanceResult,
    PredictionLog,
)
from monitoring.performance import performance_window_compute
from registry.artifacts import artifact_get, artifact_relpath
from registry.models import MLModel, MLModelVersion
from registry.services import GovernanceError

log = logging.getLogger(__name__)
MAX_RUN_WINDOWS = 24 * 62  # two months of hourly windows per run
SCORE_LABEL = "score"


# --------------------------------------------------------------------------- windows


def window_floor(moment: datetime, minutes: int) -> datetime:
    """Start of the window holding ``moment``; windows are aligned to the Unix epoch."""
    step = minutes * 60
    seconds = int(moment.timestamp()) // step * step
    return datetime.fromtimestamp(seconds, tz=UTC)


def windows_between(start: datetime, end: datetime, minutes: int) -> list[tuple]:
    """Aligned windows [ws, ws + minutes) covering [start, end)."""
    out, step = [], timedelta(minutes=minutes)
    ws = window_floor(start, minutes)
    while ws < end:
        out.append((ws, ws + step))
        ws += step
    return out


# --------------------------------------------------------------------------- reading


@functools.lru_cache(maxsize=16)
def _profile(reference_hash: str) -> drift_core.ReferenceProfile:
    data = artifact_get(sha=reference_hash, relpath=artifact_relpath(reference_hash, ".npz"))
    return drift_core.ReferenceProfile.from_bytes(data)


def reference_profile(version: MLModelVersion) -> drift_core.ReferenceProfile | None:
    """The version's verified reference profile (cached per hash), or None without one."""
    if not version.reference_hash:
        return None
    return _profile(version.reference_hash)


class Window(NamedTuple):
    """A version's logged predictions of a period, in storage order.

    ``X`` rows x features, ``scores``, ``times`` (event time, epoch microseconds)
    and ``order``, the permutation that sorts them by event time, then id.
    """

    X: np.ndarray
    scores: np.ndarray
    times: np.ndarray
    order: np.ndarray

    def scores_since(self, moment: datetime) -> np.ndarray:
        """Scores with an event time at or after ``moment``, in event-time order."""
        times = self.times[self.order]
        return self.scores[self.order][times >= _micros(moment)]


def _micros(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1_000_000))


def window_arrays(*, version: MLModelVersion, start: datetime, end: datetime) -> Window:
    """A version's predictions in [start, end). Sorting a million 30-feature rows in the
    database would cost more than the whole comparison, so only ``order`` is sorted."""
    p = len(version.feature_schema)
    if connection.vendor == "postgresql":
        feature_bytes, score_bytes, time_bytes, ids = _read_postgresql(version.pk, start, end)
        scores = np.frombuffer(score_bytes, dtype=">f8").astype(np.float64)
        times = np.frombuffer(time_bytes, dtype=">i8").astype(np.int64)
        order = np.lexsort((np.frombuffer(ids, dtype=">i8"), times))
    else:
        rows = (
            PredictionLog.objects.filter(version=version, created_at__gte=start, created_at__lt=end)
            .order_by("created_at", "id")
            .values_list("features", "score", "created_at")
        )
        chunks, score_list, time_list = [], [], []
        for features, score, created_at in rows.iterator(chunk_size=5000):
            chunks.append(features)
            score_list.append(score)
            time_list.append(_micros(created_at))
        feature_bytes = b"".join(chunks)
        scores = np.asarray(score_list, dtype=np.float64)
        times = np.asarray(time_list, dtype=np.int64)
        order = np.arange(scores.size)
    if len(feature_bytes) != scores.size * p * 8:
        raise GovernanceError(
            f"logged feature vectors of {version} do not match its {p}-feature schema",
            {"version": version.pk, "bytes": len(feature_bytes), "rows": int(scores.size)},
            status=409,
        )
    X = np.frombuffer(feature_bytes, dtype="<f8").reshape(scores.size, p)
    return Window(X, scores, times, order)


def _read_postgresql(version_id: int, start: datetime, end: datetime) -> tuple[bytes, ...]:
    # One pass, no ORDER BY: every aggregate of a group sees the rows in the same
    # order, so row i of each result belongs to the same prediction. float8send and
    # int8send give big-endian binary values; times are epoch microseconds.
    sql = (
        "SELECT string_agg(features, ''::bytea), string_agg(float8send(score), ''::bytea), "
        "string_agg(int8send((extract(epoch FROM created_at) * 1000000)::int8), ''::bytea), "
        "string_agg(int8send(id), ''::bytea) "
        f"FROM {PredictionLog._meta.db_table} "
        "WHERE version_id = %s AND created_at >= %s AND created_at < %s"
    )
    import psycopg

    connection.ensure_connection()
    # A server-binding cursor on Django's connection (same transaction) that asks for
    # binary results: the bytea arrives as raw bytes instead of twice-as-long hex text.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, [version_id, start, end], binary=True)
        row = cursor.fetchone()
    assert row is not None  # aggregates without GROUP BY give one row, empty or not
    return tuple(bytes(value or b"") for value in row)


# --------------------------------------------------------------------------- one window


def span_start(window_start: datetime, window_end: datetime) -> datetime:
    """Start of the period compared at a window's end: the window itself, or the trailing
    ``DRIFT_SPAN_MINUTES`` when that is longer (see docs/monitoring.md, "Seasonality")."""
    span = timedelta(minutes=settings.DRIFT_SPAN_MINUTES)
    return min(window_start, window_end - span)


def drift_window_compute(
    *, version: MLModelVersion, window_start: datetime, window_end: datetime, run=None
) -> DriftResult | None:
    """Compare the period ending at a window's end with the reference, store the result
    for the window, feed the window's scores to the detector, raise or clear alerts.
    None when the version has no reference profile."""
    profile = reference_profile(version)
    if profile is None:
        return None
    since = span_start(window_start, window_end)
    window = window_arrays(version=version, start=since, end=window_end)
    current = {name: window.X[:, j] for j, name in enumerate(version.feature_names)}
    current[drift_core.SCORE] = window.scores
    report = drift_core.compare(profile, current, min_samples=settings.DRIFT_MIN_SAMPLES)
    report.dataset["partial_span"] = since < window_start and not covers(version, since)
    with transaction.atomic():
        changes = detector_feed(
            version=version, window_end=window_end, scores=window.scores_since(window_start)
        )
        result = _store(version, (since, window_start, window_end), window, report, changes, run)
        _drift_alerts(version, result, report, changes)
    return result


def covers(version: MLModelVersion, since: datetime) -> bool:
    """Whether the version's traffic started before ``since`` (an index-only probe)."""
    return PredictionLog.objects.filter(version=version, created_at__lt=since).exists()


def _store(version, bounds, window: Window, report, changes, run) -> DriftResult:
    since, window_start, window_end = bounds
    scores = window.scores
    data = report.to_dict()
    dataset = data["dataset"]
    score = data["features"].get(drift_core.SCORE, {})
    result, _ = DriftResult.objects.update_or_create(
        version=version,
        window_start=window_start,
        window_end=window_end,
        defaults={
            "span_start": since,
            "n_rows": int(scores.size),
            "status": dataset["status"],
            "drift": dataset["drift"],
            "severity": dataset["severity"] or "",
            "share_drifted": dataset["share_drifted"],
            "drifted_features": [_label(n) for n in dataset["drifted_features"]],
            "score_psi": score.get("statistics", {}).get("psi"),
            "score_mean": float(scores.mean()) if scores.size else None,
            "features": {_label(k): v for k, v in data["features"].items()},
            "dataset": dataset,
            "score_changes": changes,
            "run": run,
        },
    )
    return result


def _label(name: str) -> str:
    return SCORE_LABEL if name == drift_core.SCORE else name


def _drift_alerts(version, result: DriftResult, report, changes: int) -> None:
    model = version.model
    seasonal = set(settings.DRIFT_SEASONAL_FEATURES)
    # Until a version's traffic fills a whole span, the compared hours are a slice of
    # the day and differ from the reference by time of day alone: store, do not alert.
    features = {} if report.dataset["partial_span"] else report.features
    for name, res in features.items():
        label = _label(name)
        key = f"drift:{version.pk}:{label}"
        if res.status != drift_core.OK or label in seasonal:
            # No verdict: neither evidence of drift nor of its absence. Clock-driven
            # features are shown but never alerted on (docs/monitoring.md).
            continue
        if not res.drifted:
            alert_clear(dedupe_key=key, at=result.window_end)
            continue
        stats = res.statistics
        alert_raise(
            model=model,
            version=version,
            kind="drift",
            severity=res.severity,
            dedupe_key=key,
            title=f"{model.name} {version.version}: {label} drifted (PSI {stats['psi']:.2f})",
            details={
                "feature": label,
                "window_start": result.window_start.isoformat(),
                "window_end": result.window_end.isoformat(),
                "compared_since": result.span_start.isoformat(),
                "n": res.n,
                "psi": stats.get("psi"),
                "wasserstein_norm": stats.get("wasserstein_norm"),
                "js_distance": stats.get("js_distance"),
                "p_adjusted": res.p_adjusted,
            },
            at=result.window_end,
        )
    if result.status != drift_core.OK:
        return
    key = f"score_shift:{version.pk}"
    if changes:
        alert_raise(
            model=model,
            version=version,
            kind="score_shift",
            severity="warning",
            dedupe_key=key,
            title=f"{model.name} {version.version}: the mean score shifted (Page-Hinkley)",
            details={"window_end": result.window_end.isoformat(), "changes": changes},
            at=result.window_end,
        )
    else:
        alert_clear(dedupe_key=key, at=result.window_end)


# --------------------------------------------------------------------------- Page-Hinkley


def detector_feed(*, version: MLModelVersion, window_end: datetime, scores: np.ndarray) -> int:
    """Stream one window's scores through the version's persisted detector.

    Windows are fed once each, in time order: a window ending at or before the
    detector's cursor (a re-run or a backfill of older windows) is skipped, so
    re-running a window never counts its scores twice. Returns the number of
    changes signalled.
    """
    state, _ = DetectorState.objects.select_for_update().get_or_create(
        version=version, defaults={"state": drift_core.PageHinkley().state_dict()}
    )
    if state.cursor_time is not None and window_end <= state.cursor_time:
        return 0
    detector = drift_core.PageHinkley.from_state(state.state)
    finite = scores[np.isfinite(scores)]
    changes = detector.update(finite) if finite.size else []
    state.state = detector.state_dict()
    state.cursor_time = window_end
    fields = ["state", "cursor_time", "updated_at"]
    if changes:
        state.changes += len(changes)
        state.last_change_at = window_end
        fields += ["changes", "last_change_at"]
    state.save(update_fields=fields)
    return len(changes)


# --------------------------------------------------------------------------- runs


def drift_run_create(
    *,
    model: MLModel,
    start: datetime | None = None,
    end: datetime | None = None,
    trigger: str,
    user=None,
    enqueue: bool = True,
) -> DriftRun:
    """Record a run over [start, end) (default: the last 24 complete windows) and queue it
    on a worker after commit."""
    minutes = model.drift_window_minutes
    end = end or window_floor(timezone.now(), minutes)
    start = start or end - timedelta(minutes=minutes * 24)
    if start >= end:
        raise GovernanceError("start must be before end", {"field": "start"})
    # Counted before they are listed: a range of centuries is millions of windows.
    count = math.ceil((end - window_floor(start, minutes)) / timedelta(minutes=minutes))
    if count > MAX_RUN_WINDOWS:
        raise GovernanceError(
            f"a run covers at most {MAX_RUN_WINDOWS} windows; this range has {count}",
            {"field": "start", "windows": count},
        )
    windows = windows_between(start, end, minutes)
    with transaction.atomic():
        run = DriftRun.objects.create(
            model=model,
            start=windows[0][0],
            end=windows[-1][1],
            window_minutes=minutes,
            trigger=trigger,
            requested_by=user if getattr(user, "is_authenticated", False) else None,
            windows_total=len(windows),
        )
        if enqueue:
            enqueue_on_commit("monitoring.tasks.drift_run_task", run.pk)
    return run


def lease() -> timedelta:
    return timedelta(seconds=settings.DRIFT_RUN_LEASE_SECONDS)


def _lapsed(now: datetime) -> Q:
    """Running runs whose lease lapsed: their worker died (SIGKILL, lost host)."""
    stale = now - lease()
    return Q(status=DriftRun.Status.RUNNING) & (
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, started_at__lt=stale)
    )


def _claim(run_id: int) -> bool:
    """QUEUED -> RUNNING exactly once; a failed run may be retried, and a running run whose
    lease lapsed (its worker died) may be taken over. A takeover resumes the run."""
    now = timezone.now()
    claimable = DriftRun.objects.filter(pk=run_id).filter(
        Q(status__in=[DriftRun.Status.QUEUED, DriftRun.Status.FAILED]) | _lapsed(now)
    )
    return bool(
        claimable.update(
            status=DriftRun.Status.RUNNING,
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            windows_done=0,
            message="",
        )
    )


def drift_run_lease_left(*, run_id: int) -> float | None:
    """Seconds until a running run's lease lapses; None when the run is not running."""
    run = DriftRun.objects.filter(pk=run_id, status=DriftRun.Status.RUNNING).first()
    if run is None:
        return None
    renewed = run.heartbeat_at or run.started_at or timezone.now()
    return max((renewed + lease() - timezone.now()).total_seconds(), 0.0)


def drift_runs_pending(*, now: datetime | None = None) -> list[int]:
    """Runs a worker should have but may not: queued for longer than
    ``PENDING_REQUEUE_SECONDS`` (their enqueue met a broker that was down, or the message
    was lost) or running with a lapsed lease. The requeue sweep enqueues them again;
    a duplicate message is harmless because a run is claimed before it runs."""
    now = now or timezone.now()
    waited = now - timedelta(seconds=settings.PENDING_REQUEUE_SECONDS)
    queued = Q(status=DriftRun.Status.QUEUED, created_at__lt=waited)
    pending = DriftRun.objects.filter(queued | _lapsed(now)).order_by("created_at")
    return list(pending.values_list("pk", flat=True)[:500])


def drift_run_execute(
    *, run_id: int, progress: Callable[[int, int], object] | None = None
) -> DriftRun | None:
    """Execute a queued run; returns None when another worker already has it."""
    if not _claim(run_id):
        return None
    run = DriftRun.objects.select_related("model").get(pk=run_id)
    began = time.perf_counter()
    try:
        rows = _run_windows(run, progress)
    except Exception as exc:
        DriftRun.objects.filter(pk=run.pk).update(
            status=DriftRun.Status.FAILED,
            message=str(exc)[:2000],
            finished_at=timezone.now(),
            duration_seconds=time.perf_counter() - began,
        )
        raise
    DriftRun.objects.filter(pk=run.pk).update(
        status=DriftRun.Status.SUCCEEDED,
        rows_read=rows,
        finished_at=timezone.now(),
        duration_seconds=time.perf_counter() - began,
    )
    run.refresh_from_db()
    return run


def run_versions(run: DriftRun) -> list[MLModelVersion]:
    """Versions of the run's model with a reference profile and traffic in the range."""
    versions = MLModelVersion.objects.filter(model=run.model).exclude(reference_hash="")
    return [
        v
        for v in versions.select_related("model").order_by("created_at")
        if PredictionLog.objects.filter(
            version=v, created_at__gte=run.start, created_at__lt=run.end
        ).exists()
    ]


def _run_windows(run: DriftRun, progress) -> int:
    """Every (version, window) of the run, in order. A window this run already stored
    (before its worker died and the run was taken over) is counted, not recomputed:
    its detector feed, result and alerts were committed together, and doing them again
    would count the window's alerts twice."""
    windows = windows_between(run.start, run.end, run.window_minutes)
    versions = run_versions(run)
    total = len(windows) * max(len(versions), 1)
    DriftRun.objects.filter(pk=run.pk).update(windows_total=total)
    done = rows = 0
    for version in versions:
        drift_done = {
            ws: n
            for ws, n in DriftResult.objects.filter(run=run, version=version).values_list(
                "window_start", "n_rows"
            )
        }
        performance_done = set(
            PerformanceResult.objects.filter(run=run, version=version).values_list(
                "window_end", flat=True
            )
        )
        for ws, we in windows:
            if ws in drift_done:
                rows += drift_done[ws]
            else:
                result = drift_window_compute(
                    version=version, window_start=ws, window_end=we, run=run
                )
                rows += result.n_rows if result else 0
            if we not in performance_done:
                performance_window_compute(version=version, window_end=we, run=run)
            done += 1
            DriftRun.objects.filter(pk=run.pk).update(
                windows_done=done, rows_read=rows, heartbeat_at=timezone.now()
            )
            if progress is not None:
                progress(done, total)
    if not versions:
        DriftRun.objects.filter(pk=run.pk).update(
            windows_done=total, message="no version logged predictions in this range"
        )
    return rows


# --------------------------------------------------------------------------- schedule


def drift_schedule_tick(*, model: MLModel, now: datetime | None = None) -> DriftRun | None:
    """The scheduled run: every complete window since the last scheduled one (at most a day
    back), executed in the calling worker. None when no new window has completed."""
    minutes = model.drift_window_minutes
    end = window_floor(now or timezone.now(), minutes)
    last = (
        DriftRun.objects.filter(model=model, trigger=DriftRun.Trigger.SCHEDULE)
        .exclude(status=DriftRun.Status.FAILED)
        .order_by("-end")
        .first()
    )
    if last is None:
        start = end - timedelta(minutes=minutes)
    else:
        # Catch up on windows missed while beat or the workers were down, up to a day.
        start = max(last.end, end - timedelta(days=1))
    if start >= end:
        return None
    run = drift_run_create(
        model=model, start=start, end=end, trigger=DriftRun.Trigger.SCHEDULE, enqueue=False
    )
    return drift_run_execute(run_id=run.pk)
