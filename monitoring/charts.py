"""Plotly figure specs (plain dicts, rendered by plotly.js) from stored monitoring results."""

from typing import Any

from core.chart_text import chart_text, chart_texts
from monitoring import drift_core
from monitoring.drift_jobs import SCORE_LABEL

SEVERITY_COLOURS = {"info": "#5b7db1", "warning": "#d08a1e", "critical": "#c0392b"}
METRIC_COLOURS = {"precision": "#1f77b4", "recall": "#2ca02c", "f1": "#9467bd", "auc": "#8c564b"}
REGISTERED = {"precision": "precision", "recall": "recall", "f1": "f1_score", "auc": "auc"}


def _layout(title: str, **extra) -> dict:
    return {
        "title": {"text": title, "font": {"size": 15}},
        "margin": {"l": 60, "r": 30, "t": 45, "b": 50},
        "legend": {"orientation": "h", "y": -0.2},
        **extra,
    }


def _time_axis(results: list) -> dict:
    """A date axis; a single window gets a range a window wide on each side, since
    plotly would otherwise zoom into a fraction of a millisecond around the point."""
    axis: dict = {"type": "date"}
    if len(results) == 1:
        only = results[0]
        width = only.window_end - only.window_start
        axis["range"] = [
            (only.window_start - width).isoformat(),
            (only.window_end + width).isoformat(),
        ]
    return axis


def _line_mode(points: int) -> str:
    """Lines between windows; a lone window is drawn as a marker (a line needs two)."""
    return "lines" if points > 1 else "markers"


def selection(results: list, feature: str, window) -> dict | None:
    """The (feature, window) shown in the reference-vs-current histogram: the one asked
    for, else the latest drifted feature of the latest drifted window, else the score."""
    if not results:
        return None
    names = results[-1].features
    chosen = next((r for r in results if window and r.window_start == window), None)
    if feature not in names:
        drifted = [r for r in results if r.drifted_features]
        feature = SCORE_LABEL
        if drifted:
            chosen = chosen or drifted[-1]
            feature = next((f for f in chosen.drifted_features if f != SCORE_LABEL), SCORE_LABEL)
    if chosen is None:
        flagged = [r for r in results if (r.features.get(feature) or {}).get("drifted")]
        chosen = flagged[-1] if flagged else results[-1]
    return {"feature": feature, "result": chosen}


def _reference(version, feature: str) -> dict:
    key = drift_core.SCORE if feature == SCORE_LABEL else feature
    return (version.reference_summary or {}).get("features", {}).get(key, {})


def _bin_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    fmt = "{:.3g}".format
    labels = [f"≤ {fmt(edges[0])}"]
    labels += [f"({fmt(a)}, {fmt(b)}]" for a, b in zip(edges, edges[1:], strict=False)]
    return labels + [f"> {fmt(edges[-1])}"]


def histogram(version, feature: str, result) -> dict:
    """Reference vs current share per reference bin (numeric) or per level (categorical)."""
    stored = result.features.get(feature) or {}
    stats = stored.get("statistics") or {}
    ref = _reference(version, feature)
    if stored.get("kind") == drift_core.CATEGORICAL:
        x = stats.get("levels", [])
        reference, current = stats.get("reference_proportions", []), stats.get("proportions", [])
        schema: dict[str, Any] = next(
            (f for f in version.feature_schema if f["name"] == feature), {}
        )
        names = schema.get("levels") or []
        x = [names[int(v)] if v.isdigit() and int(v) < len(names) else v for v in x]
    else:
        x = _bin_labels(ref.get("edges", []))
        reference, current = ref.get("proportions", []), stats.get("proportions", [])
    x = chart_texts(x)
    window = f"{result.window_start:%Y-%m-%d %H:%M}"
    title = f"{chart_text(feature)}: reference vs window {window} UTC"
    if stored.get("status") != "ok":
        title += f" ({stored.get('status', 'no data')}, n={stored.get('n', 0)})"
    elif "psi" in stats:
        title += f" · PSI {stats['psi']:.3f}"
    return {
        "data": [
            {
                "type": "bar",
                "name": "reference",
                "x": x,
                "y": reference,
                "marker": {"color": "#9fb0c6"},
            },
            {"type": "bar", "name": "window", "x": x, "y": current, "marker": {"color": "#d0542b"}},
        ],
        "layout": _layout(title, barmode="group", yaxis={"title": "share", "tickformat": ".0%"}),
    }


def score_over_time(version, results: list) -> dict:
    x = [r.window_start.isoformat() for r in results]
    ref_mean = _reference(version, SCORE_LABEL).get("mean")
    changes = [r for r in results if r.score_changes]
    data = [
        {
            "type": "scatter",
            "mode": _line_mode(len(x)),
            "name": "mean score",
            "x": x,
            "y": [r.score_mean for r in results],
        },
        {
            "type": "scatter",
            "mode": _line_mode(len(x)),
            "name": "score PSI",
            "x": x,
            "y": [r.score_psi for r in results],
            "yaxis": "y2",
            "line": {"dash": "dot"},
        },
        {
            "type": "scatter",
            "mode": "markers",
            "name": "Page-Hinkley change",
            "x": [r.window_start.isoformat() for r in changes],
            "y": [r.score_mean for r in changes],
            "marker": {"symbol": "x", "size": 11, "color": "#c0392b"},
        },
    ]
    shapes = []
    if ref_mean is not None and x:
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": ref_mean,
                "y1": ref_mean,
                "line": {"dash": "dash", "color": "#888"},
            }
        )
    return {
        "data": data,
        "layout": _layout(
            "Score per window (dashed: reference mean)",
            shapes=shapes,
            xaxis=_time_axis(results),
            yaxis={"title": "mean score"},
            yaxis2={"title": "PSI", "overlaying": "y", "side": "right", "rangemode": "tozero"},
        ),
    }


def drift_over_time(results: list) -> dict:
    x = [r.window_start.isoformat() for r in results]
    colours = [
        "#c0392b" if r.severity == "critical" else "#d08a1e" if r.drift else "#7a9cc6"
        for r in results
    ]
    return {
        "data": [
            {
                "type": "bar",
                "name": "share of features drifted",
                "x": x,
                "y": [r.share_drifted for r in results],
                "marker": {"color": colours},
                "text": [chart_text(", ".join(r.drifted_features)) for r in results],
                "hovertemplate": "%{x}<br>%{y:.0%} drifted<br>%{text}<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": _line_mode(len(x)),
                "name": "rows",
                "x": x,
                "y": [r.n_rows for r in results],
                "yaxis": "y2",
                "line": {"color": "#555"},
            },
        ],
        "layout": _layout(
            "Drift over time (bars: share of features drifted per window)",
            xaxis=_time_axis(results),
            yaxis={"title": "share drifted", "tickformat": ".0%", "rangemode": "tozero"},
            yaxis2={"title": "rows", "overlaying": "y", "side": "right", "rangemode": "tozero"},
        ),
    }


def psi_heatmap(results: list) -> dict:
    features = list(results[-1].features) if results else []
    z = [
        [((r.features.get(f) or {}).get("statistics") or {}).get("psi") for r in results]
        for f in features
    ]
    return {
        "data": [
            {
                "type": "heatmap",
                "x": [r.window_start.isoformat() for r in results],
                "y": chart_texts(features),
                "z": z,
                "zmin": 0,
                "zmax": 0.5,
                "colorscale": "YlOrRd",
                "reversescale": True,
                "colorbar": {"title": {"text": "PSI"}},
                "hovertemplate": "%{y}<br>%{x}<br>PSI %{z:.3f}<extra></extra>",
            }
        ],
        "layout": _layout(
            "PSI by feature and window (blank: insufficient data)",
            margin={"l": 140, "r": 30, "t": 45, "b": 50},
        ),
    }


def performance_figure(version, rows: list) -> dict:
    measured = [r for r in rows if r.status == "ok"]
    x = [r.window_end.isoformat() for r in measured]
    data: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": m,
            "x": x,
            "y": [getattr(r, m) for r in measured],
            "line": {"color": c},
        }
        for m, c in METRIC_COLOURS.items()
    ]
    data.append(
        {
            "type": "bar",
            "name": "labels",
            "x": [r.window_end.isoformat() for r in rows],
            "y": [r.n_labels for r in rows],
            "yaxis": "y2",
            "opacity": 0.3,
            "marker": {"color": "#777"},
        }
    )
    shapes = [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "y0": getattr(version, field),
            "y1": getattr(version, field),
            "line": {"dash": "dot", "color": METRIC_COLOURS[m], "width": 1},
        }
        for m, field in REGISTERED.items()
        if getattr(version, field) is not None
    ]
    return {
        "data": data,
        "layout": _layout(
            "Performance on labelled feedback (dotted: registered metrics; bars: labels)",
            shapes=shapes,
            yaxis={"title": "metric", "range": [0, 1.05]},
            yaxis2={"title": "labels", "overlaying": "y", "side": "right", "rangemode": "tozero"},
        ),
    }


def alert_timeline(alerts: list) -> dict:
    data = []
    for a in alerts:
        end = a.resolved_at or a.last_seen
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "showlegend": False,
                "x": [a.first_seen.isoformat(), end.isoformat()],
                "y": [chart_text(a.title[:60])] * 2,
                "line": {"color": SEVERITY_COLOURS.get(a.severity, "#555"), "width": 8},
                "hovertemplate": f"{a.severity} · {a.status} · seen {a.count}×<extra></extra>",
            }
        )
    return {
        "data": data,
        "layout": _layout(
            "Alert timeline (first seen to resolution or last seen)",
            margin={"l": 360, "r": 30, "t": 45, "b": 50},
            height=max(220, 60 + 28 * len(alerts)),
        ),
    }


def dashboard_figures(*, version, results, performance, alerts, selection) -> dict:
    figures = {
        "score": score_over_time(version, results),
        "drift": drift_over_time(results),
        "heatmap": psi_heatmap(results),
        "performance": performance_figure(version, performance),
        "alerts": alert_timeline(alerts),
    }
    if selection is not None:
        figures["histogram"] = histogram(version, selection["feature"], selection["result"])
        figures["score_histogram"] = histogram(version, SCORE_LABEL, selection["result"])
    return figures
