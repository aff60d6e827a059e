from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from monitoring import charts

START = datetime(2026, 11, 20, 10, tzinfo=UTC)


def window(hour: int, **values):
    start = START + timedelta(hours=hour)
    fields = dict(
        window_start=start,
        window_end=start + timedelta(hours=1),
        score_mean=0.3,
        score_psi=0.01,
        score_changes=[],
        share_drifted=0.1,
        drifted_features=["bytes_out"],
        severity="warning",
        drift=True,
        n_rows=100,
    )
    return SimpleNamespace(**(fields | values))


VERSION = SimpleNamespace(reference_summary={"features": {"__score__": {"mean": 0.25}}})


def test_a_single_window_is_drawn_as_markers_on_an_hour_wide_axis():
    only = [window(0)]
    for figure in (charts.score_over_time(VERSION, only), charts.drift_over_time(only)):
        axis = figure["layout"]["xaxis"]
        assert axis["range"] == [
            (START - timedelta(hours=1)).isoformat(),
            (START + timedelta(hours=2)).isoformat(),
        ]
        lines = [t for t in figure["data"] if t["type"] == "scatter" and "change" not in t["name"]]
        assert lines and all(t["mode"] == "markers" for t in lines)


def test_several_windows_are_joined_by_lines_on_an_automatic_axis():
    results = [window(h) for h in range(3)]
    figure = charts.score_over_time(VERSION, results)
    assert "range" not in figure["layout"]["xaxis"]
    modes = {t["name"]: t["mode"] for t in figure["data"]}
    assert modes["mean score"] == "lines" and modes["score PSI"] == "lines"
    (reference,) = figure["layout"]["shapes"]
    assert (reference["xref"], reference["x0"], reference["x1"]) == ("paper", 0, 1)
