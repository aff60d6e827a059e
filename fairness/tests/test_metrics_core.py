"""Behaviour of the fairness core, with fairlearn and scipy as oracles.

Pure pytest, no database: runs with ``-p no:django`` and under pytest-django.
"""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from scipy import stats

from fairness import metrics_core as mc

TOL = 1e-12
FAIRLEARN_METRICS = {
    "selection_rate": selection_rate,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
}


def metric_frame(y, d, groups, weights=None):
    params = None
    if weights is not None:
        params = {k: {"sample_weight": weights} for k in FAIRLEARN_METRICS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MetricFrame(
            metrics=FAIRLEARN_METRICS,
            y_true=y,
            y_pred=d,
            sensitive_features=groups,
            sample_params=params,
        )


def random_events(n=5000, n_groups=5, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.array([f"g{i}" for i in range(n_groups)])[rng.integers(0, n_groups, n)]
    y = (rng.random(n) < 0.2).astype(int)
    d = (rng.random(n) < np.where(y == 1, 0.7, 0.1)).astype(int)
    return y, d, groups


def biased_events(n=60_000, fpr_factor=3.0, seed=1):
    """Four regions, equal base rates; APAC's benign events get ``fpr_factor`` x FPR."""
    rng = np.random.default_rng(seed)
    region = rng.choice(np.array(["EU", "US", "APAC", "LATAM"]), n, p=[0.4, 0.3, 0.2, 0.1])
    y = (rng.random(n) < 0.03).astype(int)
    fpr = np.where(region == "APAC", 0.02 * fpr_factor, 0.02)
    d = np.where(y == 1, rng.random(n) < 0.9, rng.random(n) < fpr).astype(int)
    return y, d, region


def assert_close(ours, theirs):
    np.testing.assert_allclose(np.asarray(ours, float), np.asarray(theirs, float), rtol=0, atol=TOL)


def by_name(result, name):
    return next(g for g in result.to_dict()["groups"] if g["name"] == name)


# --------------------------------------------------------------------------
# Agreement with fairlearn
# --------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_it_matches_fairlearn_metric_frame_on_random_data(weighted):
    y, d, groups = random_events()
    w = np.random.default_rng(5).uniform(0.1, 3.0, y.size) if weighted else None
    table = mc.contingency(y, y_pred=d, sensitive={"g": groups}, sample_weight=w)
    ours = mc.group_metrics(table)
    mf = metric_frame(y, d, groups, w)
    assert list(table.names) == list(mf.by_group.index)
    for metric in FAIRLEARN_METRICS:
        assert_close(ours.rates[metric], mf.by_group[metric])
    agg = ours.aggregates
    assert_close(agg["demographic_parity_difference"], mf.difference()["selection_rate"])
    assert_close(agg["demographic_parity_ratio"], mf.ratio()["selection_rate"])
    assert_close(agg["equal_opportunity_difference"], mf.difference()["tpr"])
    assert_close(agg["equal_opportunity_ratio"], mf.ratio()["tpr"])
    assert_close(agg["fpr_difference"], mf.difference()["fpr"])
    assert_close(agg["fpr_ratio"], mf.ratio()["fpr"])


def test_it_matches_fairlearn_aggregate_functions():
    y, d, groups = random_events(seed=3)
    agg = mc.group_metrics(mc.contingency(y, y_pred=d, sensitive={"g": groups})).aggregates
    kw = {"sensitive_features": groups}
    assert_close(agg["demographic_parity_difference"], demographic_parity_difference(y, d, **kw))
    assert_close(agg["demographic_parity_ratio"], demographic_parity_ratio(y, d, **kw))
    assert_close(agg["equalized_odds_difference"], equalized_odds_difference(y, d, **kw))


def test_scores_and_threshold_flag_ties_like_y_pred():
    rng = np.random.default_rng(2)
    scores = np.round(rng.random(3000), 2)
    y = (rng.random(3000) < 0.3).astype(int)
    groups = rng.choice(["a", "b"], 3000)
    from_scores = mc.contingency(y, scores=scores, threshold=0.5, sensitive={"g": groups})
    from_pred = mc.contingency(y, y_pred=scores >= 0.5, sensitive={"g": groups})
    np.testing.assert_array_equal(from_scores.counts, from_pred.counts)


def test_a_group_without_threats_has_undefined_tpr_where_fairlearn_reports_zero():
    y, d, groups = random_events(seed=4)
    y[groups == "g2"] = 0
    result = mc.audit(y, y_pred=d, sensitive={"g": groups}, n_boot=0)
    mf = metric_frame(y, d, groups)
    # fairlearn (sklearn zero_division) reports 0.0, which inflates equal opportunity
    assert mf.by_group.loc["g2", "tpr"] == 0.0
    assert np.isnan(result.metrics.rates["tpr"][2])
    g2 = by_name(result, "g2")["metrics"]
    assert g2["tpr"]["value"] is None and g2["fnr"]["value"] is None
    defined = mf.by_group["tpr"].drop("g2")
    agg = result.metrics.aggregates
    assert_close(agg["equal_opportunity_difference"], defined.max() - defined.min())
    assert mf.difference()["tpr"] == pytest.approx(defined.max())  # fairlearn: max - 0
    codes = {(r["code"], r["group"], r["metric"]) for r in result.reasons}
    assert ("metric_undefined", "g2", "tpr") in codes


def test_a_group_with_no_flags_has_zero_selection_rate_and_undefined_precision():
    y, d, groups = random_events(seed=6)
    d[groups == "g1"] = 0
    result = mc.audit(y, y_pred=d, sensitive={"g": groups}, n_boot=0)
    mf = metric_frame(y, d, groups)
    assert_close(result.metrics.rates["selection_rate"], mf.by_group["selection_rate"])
    g1 = by_name(result, "g1")["metrics"]
    assert g1["selection_rate"]["value"] == 0.0
    assert g1["precision"]["value"] is None
    assert_close(result.metrics.aggregates["demographic_parity_ratio"], 0.0)


def test_nobody_flagged_gives_parity_instead_of_nan():
    y, _, groups = random_events(seed=7)
    d = np.zeros_like(y)
    agg = mc.group_metrics(mc.contingency(y, y_pred=d, sensitive={"g": groups})).aggregates
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = demographic_parity_ratio(y, d, sensitive_features=groups)
    assert np.isnan(theirs)  # fairlearn: 0 / 0
    assert agg["demographic_parity_ratio"] == 1.0
    assert agg["demographic_parity_difference"] == 0.0
    assert agg["fpr_ratio"] == 1.0 and agg["equal_opportunity_ratio"] == 1.0


def test_one_member_groups_match_fairlearn_where_defined():
    y, d, groups = random_events(n=300, seed=8)
    y, d = np.append(y, [1, 0]), np.append(d, [1, 1])
    groups = np.append(groups, ["solo_threat", "solo_benign"])
    rates = mc.group_metrics(mc.contingency(y, y_pred=d, sensitive={"g": groups})).rates
    mf = metric_frame(y, d, groups).by_group
    for metric in FAIRLEARN_METRICS:
        ours = pd.Series(rates[metric], index=mf.index)
        defined = ours.notna()
        assert_close(ours[defined], mf.loc[defined, metric])
        # fairlearn fills the undefined rates (no benign / no threat event) with 0
        assert (mf.loc[~defined, metric] == 0).all()
    assert np.isnan(rates["fpr"][list(mf.index).index("solo_threat")])
    assert np.isnan(rates["tpr"][list(mf.index).index("solo_benign")])


def test_zero_weights_are_allowed_and_leave_rates_undefined():
    y, d, groups = random_events(n=400, seed=9)
    w = np.where(groups == "g0", 0.0, 1.0)
    result = mc.audit(y, y_pred=d, sensitive={"g": groups}, sample_weight=w, n_boot=50)
    g0 = by_name(result, "g0")
    assert g0["count"] > 0 and g0["weight"] == 0.0
    assert g0["metrics"]["selection_rate"]["value"] is None
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"y_pred": [0, 1, 2]},
        {"y_pred": [0, 1]},
        {"scores": [0.1, 0.2, 0.3]},
        {"scores": [0.1, np.nan, 0.3], "threshold": 0.5},
        {"y_pred": [0, 1, 1], "scores": [0.1, 0.2, 0.3], "threshold": 0.5},
        {"y_pred": [0, 1, 1], "sample_weight": [1.0, -1.0, 1.0]},
    ],
)
def test_it_rejects_malformed_input(kwargs):
    with pytest.raises(ValueError):
        mc.contingency([0, 1, 1], sensitive={"g": ["a", "b", "a"]}, **kwargs)


# --------------------------------------------------------------------------
# Groups: factorising, intersections, reference
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        np.array(["region_3", "region_1", "eu", "region_3", "x"] * 50),
        np.array(["ab", "abc", "a", "abcd"] * 40),
        np.array([7, -3, 7, 1000, 0] * 20),
        np.array([True, False, True]),
        np.array([f"user-{i:05d}" for i in range(9000)]),  # too many levels: np.unique
        np.array(["b", None, "a", 3], dtype=object),
        np.array([2.5, 1.0, 2.5]),
    ],
)
def test_factorize_equals_np_unique(values):
    levels, codes = mc._factorize(values)
    expected = values.astype(str) if values.dtype == object else values
    ref_levels, ref_codes = np.unique(expected, return_inverse=True)
    np.testing.assert_array_equal(levels, ref_levels)
    np.testing.assert_array_equal(codes, ref_codes.reshape(-1))


def test_intersectional_groups_keep_empty_cells():
    rng = np.random.default_rng(10)
    n = 2000
    region = rng.choice(["EU", "US"], n)
    role = rng.choice(["admin", "user"], n)
    role[region == "US"] = "user"  # no US admins
    y, d = (rng.random(n) < 0.2).astype(int), (rng.random(n) < 0.3).astype(int)
    result = mc.audit(y, y_pred=d, sensitive={"region": region, "role": role}, n_boot=100)
    out = result.to_dict()
    assert [g["name"] for g in out["groups"]] == [
        "region=EU, role=admin",
        "region=EU, role=user",
        "region=US, role=admin",
        "region=US, role=user",
    ]
    empty = out["groups"][2]
    assert empty["attributes"] == {"region": "US", "role": "admin"}
    assert empty["count"] == 0 and empty["status"] == "empty"
    assert all(v["value"] is None and v["ci"] is None for v in empty["metrics"].values())
    assert empty["four_fifths"]["fpr"]["status"] == "empty"
    assert any(r["code"] == "empty_group" for r in out["reasons"])
    mf = metric_frame(y, d, pd.DataFrame({"region": region, "role": role}))
    for metric in FAIRLEARN_METRICS:
        assert_close(result.metrics.rates[metric], mf.by_group[metric])
    json.dumps(out, allow_nan=False)


def test_reference_group_options():
    y, d, region = biased_events(n=20_000)
    table = mc.contingency(y, y_pred=d, sensitive={"region": region})
    metrics = mc.group_metrics(table)
    names = table.names
    largest = mc.choose_reference(table, metrics, "largest")
    assert names[largest["fpr"]] == "EU" == names[largest["selection_rate"]]
    best = mc.choose_reference(table, metrics, "best")
    assert best["fpr"] == int(np.nanargmin(metrics.rates["fpr"]))
    assert names[mc.choose_reference(table, metrics, "US")["fpr"]] == "US"
    assert names[mc.choose_reference(table, metrics, {"region": "LATAM"})["fpr"]] == "LATAM"
    with pytest.raises(ValueError, match="unknown group"):
        mc.choose_reference(table, metrics, "MARS")
    result = mc.audit(y, y_pred=d, sensitive={"region": region}, reference="US", n_boot=0)
    assert result.to_dict()["reference"] == {"selection_rate": "US", "fpr": "US"}
    assert by_name(result, "US")["four_fifths"]["fpr"]["status"] == "reference"


def test_impact_ratio_direction_and_zero_rates():
    rate = np.array([0.02, 0.06, 0.0, np.nan])
    ratio = mc.impact_ratios(rate, 0)
    assert ratio[0] == 1.0 and ratio[1] == pytest.approx(1 / 3)
    assert ratio[2] == np.inf and np.isnan(ratio[3])
    assert mc.impact_ratios(np.array([0.0, 0.0]), 0).tolist() == [1.0, 1.0]


# --------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------


def test_bootstrap_intervals_contain_the_estimates_and_are_reproducible():
    y, d, region = biased_events(n=30_000)
    first = mc.audit(y, y_pred=d, sensitive={"region": region}, n_boot=400, seed=3)
    again = mc.audit(y, y_pred=d, sensitive={"region": region}, n_boot=400, seed=3)
    other = mc.audit(y, y_pred=d, sensitive={"region": region}, n_boot=400, seed=4)
    out = first.to_dict()
    assert out == again.to_dict()
    assert out["groups"] != other.to_dict()["groups"]
    for group in out["groups"]:
        entries = list(group["metrics"].values()) + list(group["four_fifths"].values())
        for entry in entries:
            value = entry.get("value", entry.get("ratio"))
            if entry["ci"] is not None:
                assert entry["ci"][0] <= value <= entry["ci"][1]
    for name, entry in out["aggregates"].items():
        assert entry["ci"][0] <= entry["value"] <= entry["ci"][1], name


def test_bootstrap_draws_do_not_depend_on_chunking_and_report_progress():
    y, d, region = biased_events(n=5_000)
    table = mc.contingency(y, y_pred=d, sensitive={"region": region})
    calls = []
    small = np.concatenate(list(mc.bootstrap_cells(table, n_boot=300, seed=1, chunk=7)))
    whole = np.concatenate(
        list(mc.bootstrap_cells(table, n_boot=300, seed=1, progress=lambda *a: calls.append(a)))
    )
    np.testing.assert_array_equal(small, whole)
    assert calls[-1] == (300, 300)
    # the stratified scheme keeps every group's size
    assert (whole.sum(axis=2) == table.n_events).all()


def test_bootstrap_interval_coverage_is_roughly_nominal():
    rng = np.random.default_rng(11)
    true_rate, n, reps, covered = 0.1, 400, 200, 0
    groups = np.repeat(["a", "b"], n // 2)
    for rep in range(reps):
        d = (rng.random(n) < true_rate).astype(int)
        table = mc.contingency(np.zeros(n, int), y_pred=d, sensitive={"g": groups})
        ci = mc.bootstrap_intervals(table, {}, n_boot=300, seed=rep)["rate:selection_rate"]
        covered += ci[0, 0] <= true_rate <= ci[0, 1]
    assert 0.88 <= covered / reps <= 0.99


def test_percentile_interval_matches_numpy_and_handles_inf_and_nan():
    samples = np.random.default_rng(12).normal(size=(999, 3))
    expected = np.percentile(samples, [2.5, 97.5], axis=0).T
    np.testing.assert_allclose(mc.percentile_interval(samples), expected, atol=1e-12)
    odd = np.array([[1.0, np.nan], [np.inf, np.nan], [np.inf, np.nan], [2.0, np.nan]])
    ci = mc.percentile_interval(odd)
    assert ci[0, 0] == pytest.approx(1.075) and ci[0, 1] == np.inf
    assert np.isnan(ci[1]).all()


# --------------------------------------------------------------------------
# Significance
# --------------------------------------------------------------------------


def test_small_expected_counts_use_fisher_with_scipys_p_value():
    res = mc.compare_proportions(3, 20, 1, 40)
    assert res.test == "fisher"
    expected = stats.fisher_exact([[3, 17], [1, 39]])
    assert res.p_value == expected.pvalue and res.statistic == expected.statistic


def test_large_counts_use_yates_corrected_chi_squared_with_scipys_p_value():
    res = mc.compare_proportions(120, 1000, 80, 1000)
    assert res.test == "chi2"
    expected = stats.chi2_contingency([[120, 880], [80, 920]], correction=True)
    assert res.p_value == expected.pvalue and res.statistic == expected.statistic


def test_empty_column_falls_back_to_fisher():
    res = mc.compare_proportions(0, 500, 0, 800)
    assert res.test == "fisher" and res.p_value == 1.0


def test_holm_adjustment():
    adjusted = mc.holm([0.01, 0.04, np.nan, 0.03, 0.5])
    np.testing.assert_allclose(adjusted[[0, 1, 3, 4]], [0.04, 0.09, 0.09, 0.5])
    assert np.isnan(adjusted[2])


# --------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------


def test_a_region_with_three_times_the_fpr_fails_naming_group_and_metric():
    y, d, region = biased_events()
    out = mc.audit(y, y_pred=d, sensitive={"region": region}, n_boot=200).to_dict()
    assert out["verdict"] == "fail"
    failing = [r for r in out["reasons"] if r["severity"] == "fail"]
    assert [(r["code"], r["group"], r["metric"]) for r in failing] == [
        ("four_fifths_failed", "APAC", "fpr")
    ]
    assert failing[0]["ratio"] < 0.5 and failing[0]["p_adjusted"] < 1e-6
    apac = next(g for g in out["groups"] if g["name"] == "APAC")
    assert apac["four_fifths"]["fpr"]["status"] == "fail"
    json.dumps(out, allow_nan=False)


def test_a_fair_detector_passes():
    y, d, region = biased_events(fpr_factor=1.0)
    out = mc.audit(y, y_pred=d, sensitive={"region": region}, n_boot=200).to_dict()
    assert out["verdict"] == "pass"
    assert not [r for r in out["reasons"] if r["severity"] in ("fail", "inconclusive")]


def test_flag_rate_disparity_from_base_rates_is_advisory_unless_gated():
    rng = np.random.default_rng(13)
    n = 40_000
    region = rng.choice(["EU", "APAC"], n)
    y = (rng.random(n) < np.where(region == "APAC", 0.15, 0.03)).astype(int)
    d = np.where(y == 1, rng.random(n) < 0.9, rng.random(n) < 0.02).astype(int)
    default = mc.audit(y, y_pred=d, sensitive={"region": region}, n_boot=0)
    assert default.verdict == "pass"
    assert any(r["severity"] == "advisory" for r in default.reasons)
    gated = mc.audit(
        y, y_pred=d, sensitive={"region": region}, n_boot=0, gate_metrics=("fpr", "selection_rate")
    )
    assert gated.verdict == "fail"


def test_small_groups_are_insufficient_not_judged():
    y, d, region = biased_events(n=20_000)
    rng = np.random.default_rng(14)
    tiny = rng.choice(np.flatnonzero(region == "LATAM"), 12, replace=False)
    region = region.astype("<U6")
    region[tiny] = "ANTARC"
    d[tiny] = 1  # every tiny-group event flagged: extreme, yet only 12 events
    out = mc.audit(y, y_pred=d, sensitive={"region": region}, n_boot=0).to_dict()
    antarc = next(g for g in out["groups"] if g["name"] == "ANTARC")
    assert antarc["status"] == "insufficient_data"
    assert antarc["four_fifths"]["fpr"]["status"] == "insufficient_data"
    assert antarc["four_fifths"]["fpr"]["p_value"] is None
    assert any(r["code"] == "insufficient_data" and r["group"] == "ANTARC" for r in out["reasons"])


def test_mostly_small_groups_make_the_verdict_inconclusive():
    rng = np.random.default_rng(15)
    n = 400
    region = rng.choice([f"r{i}" for i in range(20)], n)
    y, d = (rng.random(n) < 0.05).astype(int), (rng.random(n) < 0.05).astype(int)
    region[:100] = "big"
    out = mc.audit(y, y_pred=d, sensitive={"region": region}, n_boot=0).to_dict()
    assert out["verdict"] == "inconclusive"
    codes = {r["code"] for r in out["reasons"] if r["severity"] == "inconclusive"}
    assert codes & {"too_many_insufficient_groups", "no_comparison_possible"}


def test_an_unsignificant_four_fifths_failure_is_inconclusive():
    rng = np.random.default_rng(16)
    region = np.repeat(["EU", "APAC"], [2000, 60])
    y = np.zeros(region.size, int)
    d = np.zeros(region.size, int)
    d[rng.choice(2000, 40, replace=False)] = 1  # EU FPR 2%
    d[2000:2002] = 1  # APAC FPR 3.3%: ratio 0.6, but 2 events out of 60
    out = mc.audit(y, y_pred=d, sensitive={"region": region}, n_boot=100).to_dict()
    assert out["verdict"] == "inconclusive"
    apac = next(g for g in out["groups"] if g["name"] == "APAC")["four_fifths"]["fpr"]
    assert apac["status"] == "inconclusive" and apac["test"] == "fisher"
    assert apac["ratio"] == pytest.approx(0.02 / (2 / 60))


def test_a_single_group_cannot_be_judged():
    y, d, _ = random_events(n=500)
    out = mc.audit(y, y_pred=d, sensitive={"g": np.full(500, "all")}, n_boot=50).to_dict()
    assert out["verdict"] == "inconclusive"
    assert any(r["code"] == "no_comparison_possible" for r in out["reasons"])


def test_an_empty_named_reference_is_inconclusive_and_json_safe():
    rng = np.random.default_rng(17)
    n = 3000
    region, role = rng.choice(["EU", "US"], n), rng.choice(["admin", "user"], n)
    role[region == "US"] = "user"
    y, d = (rng.random(n) < 0.1).astype(int), (rng.random(n) < 0.1).astype(int)
    progress = []
    result = mc.audit(
        y,
        y_pred=d,
        sensitive={"region": region, "role": role},
        reference={"region": "US", "role": "admin"},
        n_boot=100,
        progress=lambda done, total: progress.append((done, total)),
    )
    out = result.to_dict()
    assert out["verdict"] == "inconclusive"
    statuses = {g["name"]: g["four_fifths"]["fpr"]["status"] for g in out["groups"]}
    assert statuses["region=US, role=admin"] == "reference"
    assert set(statuses.values()) == {"reference", "no_reference"}
    assert progress[-1] == (100, 100)
    json.dumps(out, allow_nan=False)
