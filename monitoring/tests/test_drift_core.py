"""Tests of the Django-free drift core against scipy and hand computations."""

import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitoring import drift_core as dc


def _numeric_ref(values, **kwargs):
    return dc.build_reference({"x": np.asarray(values, dtype=float)}, {"x": "numeric"}, **kwargs)


def _numeric_stats(ref_values, cur_values):
    profile = _numeric_ref(ref_values)
    report = dc.compare(profile, {"x": np.asarray(cur_values, dtype=float)}, min_samples=1)
    return report.features["x"]


# --------------------------------------------------------------------------
# Agreement with scipy
# --------------------------------------------------------------------------

KS_CASES = [
    # (reference size, current size, rounding step for ties or None)
    (50, 50, None),
    (200, 333, None),
    (1000, 7000, None),
    (3000, 3000, 0.5),
    (12_000, 500, None),
    (20_000, 60_000, None),
    (20_000, 60_000, 0.25),
    (5, 15_000, 1.0),
    (1, 1, None),
]


@pytest.mark.parametrize(("m", "n", "step"), KS_CASES)
def test_ks_and_wasserstein_match_scipy(m, n, step):
    rng = np.random.default_rng(m * 7 + n)
    ref = rng.normal(0.0, 1.0, m)
    cur = rng.normal(0.15, 1.3, n)
    if step is not None:
        ref, cur = np.round(ref / step) * step, np.round(cur / step) * step
    res = _numeric_stats(ref, cur)
    expected = stats.ks_2samp(ref, cur)
    assert res.statistics["ks_statistic"] == pytest.approx(expected.statistic, abs=1e-9)
    assert res.statistics["ks_pvalue"] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
    assert res.p_value == res.statistics["ks_pvalue"]
    w1 = stats.wasserstein_distance(ref, cur)
    assert res.statistics["wasserstein"] == pytest.approx(w1, abs=1e-9)
    if np.std(ref) > 0:
        norm = res.statistics["wasserstein_norm"]
        assert norm == pytest.approx(w1 / np.std(ref), rel=1e-12)


def test_large_scale_values_match_scipy_relatively():
    rng = np.random.default_rng(5)
    ref = rng.normal(1e6, 5e3, 4000)
    cur = rng.normal(1.001e6, 5e3, 30_000)
    res = _numeric_stats(ref, cur)
    assert res.statistics["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(ref, cur), rel=1e-12
    )
    assert res.statistics["ks_statistic"] == pytest.approx(
        stats.ks_2samp(ref, cur).statistic, abs=1e-12
    )


def test_identical_samples_and_disjoint_samples():
    x = np.arange(500.0)
    same = _numeric_stats(x, x)
    assert same.statistics["ks_statistic"] == 0.0
    assert same.statistics["ks_pvalue"] == 1.0
    assert same.statistics["wasserstein"] == 0.0
    assert same.statistics["psi"] == pytest.approx(0.0, abs=1e-12)
    apart = _numeric_stats(x, x + 1000.0)
    assert apart.statistics["ks_statistic"] == 1.0
    assert apart.statistics["wasserstein"] == pytest.approx(1000.0)


def test_constant_reference_column():
    ref = np.full(400, 3.0)
    cur = np.r_[np.full(300, 3.0), np.full(100, 4.0)]
    profile = _numeric_ref(ref)
    feat = profile.features["x"]
    # All deciles equal 3: one interior edge, bins (-inf, 3] and (3, inf).
    assert feat.edges.tolist() == [3.0]
    assert feat.proportions.tolist() == [1.0, 0.0]
    assert feat.std == 0.0
    res = dc.compare(profile, {"x": cur}).features["x"]
    assert res.statistics["ks_statistic"] == pytest.approx(stats.ks_2samp(ref, cur).statistic)
    assert res.statistics["ks_pvalue"] == pytest.approx(stats.ks_2samp(ref, cur).pvalue, rel=1e-6)
    assert res.statistics["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref, cur))
    assert res.statistics["wasserstein_norm"] is None  # undefined for std 0
    # Empty reference bin floored at 1e-4: (0.75 - 1)ln(0.75) + (0.25 - 1e-4)ln(0.25 / 1e-4)
    expected = (0.75 - 1.0) * math.log(0.75) + (0.25 - 1e-4) * math.log(0.25 / 1e-4)
    assert res.statistics["psi"] == pytest.approx(expected, rel=1e-12)
    assert res.drifted is True
    assert res.severity == "critical"


def test_constant_current_column():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=2000)
    cur = np.zeros(300)
    res = _numeric_stats(ref, cur)
    assert res.statistics["ks_statistic"] == pytest.approx(stats.ks_2samp(ref, cur).statistic)
    assert res.statistics["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref, cur))
    assert res.statistics["std"] == 0.0


def test_non_finite_values_are_missing():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=1000)
    cur = rng.normal(size=1000)
    dirty = cur.copy()
    dirty[:10] = np.nan
    dirty[10:12] = np.inf
    dirty[12] = -np.inf
    res = _numeric_stats(ref, dirty)
    clean = cur[13:]
    assert res.n == clean.size
    assert res.n_missing == 13
    assert res.statistics["ks_statistic"] == pytest.approx(stats.ks_2samp(ref, clean).statistic)
    assert res.statistics["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(ref, clean), abs=1e-9
    )


def test_subsampled_reference_matches_scipy_on_the_stored_sample():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=50_000)
    cur = rng.normal(0.05, 1.0, 40_000)
    profile = _numeric_ref(ref, max_sample=20_000, seed=11)
    feat = profile.features["x"]
    assert feat.sample.size == 20_000
    assert feat.n == 50_000  # moments and bins describe the full column
    assert feat.mean == pytest.approx(np.mean(ref))
    again = _numeric_ref(ref, max_sample=20_000, seed=11).features["x"]
    np.testing.assert_array_equal(feat.sample, again.sample)
    res = dc.compare(profile, {"x": cur}).features["x"]
    expected = stats.ks_2samp(feat.sample, cur)
    assert res.statistics["ks_statistic"] == pytest.approx(expected.statistic, abs=1e-9)
    assert res.statistics["ks_pvalue"] == pytest.approx(expected.pvalue, rel=1e-6)
    assert res.statistics["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(feat.sample, cur), abs=1e-9
    )


def _categorical(ref_codes, cur_codes):
    profile = dc.build_reference({"c": ref_codes}, {"c": "categorical"})
    return dc.compare(profile, {"c": cur_codes}, min_samples=1).features["c"]


def test_categorical_matches_chisquare_and_jensenshannon():
    rng = np.random.default_rng(6)
    ref = rng.choice(4, size=5000, p=[0.4, 0.3, 0.2, 0.1]).astype(float)
    cur = rng.choice(4, size=3000, p=[0.35, 0.3, 0.2, 0.15]).astype(float)
    res = _categorical(ref, cur)
    obs = np.bincount(cur.astype(int), minlength=4)
    p = np.bincount(ref.astype(int), minlength=4) / ref.size
    expected = stats.chisquare(obs, p * obs.sum())
    assert res.test == "chi2"
    assert res.statistics["chi2"] == pytest.approx(expected.statistic, rel=1e-12)
    assert res.statistics["chi2_pvalue"] == pytest.approx(expected.pvalue, rel=1e-6)
    assert res.statistics["dof"] == 3
    js = jensenshannon(p, obs / obs.sum(), base=2)
    assert res.statistics["js_distance"] == pytest.approx(js, abs=1e-12)
    assert res.statistics["levels"] == ["0", "1", "2", "3"]
    assert res.statistics["unseen_levels"] == []


def test_categorical_unseen_level_gets_floored_expectation():
    ref = np.array([0.0] * 600 + [1.0] * 400)
    cur = np.array([0.0] * 500 + [1.0] * 450 + [7.0] * 50)
    res = _categorical(ref, cur)
    floored = np.maximum([0.6, 0.4, 0.0], dc.PROPORTION_FLOOR)
    f_exp = 1000 * floored / floored.sum()
    expected = stats.chisquare([500, 450, 50], f_exp)
    assert res.statistics["chi2"] == pytest.approx(expected.statistic, rel=1e-12)
    assert res.statistics["chi2_pvalue"] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
    assert res.statistics["unseen_levels"] == ["7"]
    assert res.statistics["unseen_share"] == pytest.approx(0.05)
    js = jensenshannon([0.6, 0.4, 0.0], [0.5, 0.45, 0.05], base=2)
    assert res.statistics["js_distance"] == pytest.approx(js, abs=1e-12)


def test_categorical_strings_and_single_level():
    ref = np.array(["a"] * 300 + ["b"] * 200)
    cur = np.array(["b"] * 100 + ["a"] * 150 + [None] * 5, dtype=object)
    res = _categorical(ref, cur)
    assert res.n == 250 and res.n_missing == 5
    assert res.statistics["levels"] == ["a", "b"]
    expected = stats.chisquare([150, 100], [150, 100])
    assert res.statistics["chi2"] == pytest.approx(expected.statistic, abs=1e-12)
    single = _categorical(np.ones(200), np.ones(150))
    assert single.statistics["dof"] == 0
    assert single.p_value == 1.0
    assert single.drifted is False


# --------------------------------------------------------------------------
# PSI, corrections, insufficient data
# --------------------------------------------------------------------------


def test_psi_hand_computed():
    # Two bins: reference 50/50, current 80/20.
    # (0.8 - 0.5) ln(0.8/0.5) + (0.2 - 0.5) ln(0.2/0.5) = 0.3 ln 1.6 + 0.3 ln 2.5
    assert dc.psi([0.5, 0.5], [0.8, 0.2]) == pytest.approx(0.3 * math.log(1.6 * 2.5))
    # Empty current bin is floored at 1e-4.
    value = (1e-4 - 0.1) * math.log(1e-4 / 0.1) + (1.0 - 0.9) * math.log(1.0 / 0.9)
    assert dc.psi([0.1, 0.9], [0.0, 1.0]) == pytest.approx(value)


def test_psi_on_reference_deciles():
    ref = np.arange(1.0, 101.0)  # deciles 10.9, 20.8, ... -> ten bins of ten values
    profile = _numeric_ref(ref)
    feat = profile.features["x"]
    assert feat.edges.size == 9
    np.testing.assert_allclose(feat.proportions, np.full(10, 0.1))
    cur = np.r_[np.full(50, 5.0), np.full(50, 95.0)]  # first and last bin, half each
    res = dc.compare(profile, {"x": cur}, min_samples=1).features["x"]
    expected = 2 * (0.5 - 0.1) * math.log(0.5 / 0.1) + 8 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert res.statistics["psi"] == pytest.approx(expected, rel=1e-12)
    assert res.statistics["proportions"] == [0.5] + [0.0] * 8 + [0.5]


def test_holm_hand_computed():
    p = [0.01, 0.04, 0.03, 0.005]
    # ascending 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04
    # running maximum -> 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(dc.adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(dc.adjust_pvalues([0.5, 0.9], "holm"), [1.0, 1.0])


def test_bh_matches_scipy():
    rng = np.random.default_rng(8)
    p = np.r_[rng.uniform(size=20), rng.uniform(0, 0.01, size=5), [0.03, 0.03]]
    np.testing.assert_allclose(
        dc.adjust_pvalues(p, "bh"), stats.false_discovery_control(p, method="bh"), rtol=1e-12
    )
    np.testing.assert_array_equal(dc.adjust_pvalues(p, "none"), p)


def test_insufficient_data_gets_no_verdict():
    rng = np.random.default_rng(9)
    cols = {"a": rng.normal(size=1000), "b": rng.normal(size=1000)}
    cols[dc.SCORE] = rng.uniform(size=1000)
    profile = dc.build_reference(cols, {"a": "numeric", "b": "numeric"})
    small = {k: rng.normal(5.0, 1.0, size=99) for k in cols}
    report = dc.compare(profile, small, min_samples=100)
    for res in report.features.values():
        assert res.status == dc.INSUFFICIENT
        assert res.reason == "current"
        assert res.n == 99
        assert res.drifted is None and res.severity is None and res.p_adjusted is None
    assert report.dataset["status"] == dc.INSUFFICIENT
    assert report.dataset["drift"] is None
    ok = dc.compare(profile, small, min_samples=50)
    assert ok.dataset["status"] == dc.OK
    assert ok.dataset["drift"] is True and ok.dataset["score_drifted"] is True


def test_insufficient_feature_is_left_out_of_correction():
    rng = np.random.default_rng(10)
    cols = {"a": rng.normal(size=1000), "b": rng.normal(size=1000)}
    profile = dc.build_reference(cols, {"a": "numeric", "b": "numeric"})
    cur = {"a": rng.normal(size=500), "b": np.r_[rng.normal(size=50), np.full(950, np.nan)]}
    report = dc.compare(profile, cur)
    a, b = report.features["a"], report.features["b"]
    assert b.status == dc.INSUFFICIENT and b.n == 50 and b.n_missing == 950
    assert a.p_adjusted == pytest.approx(a.p_value)  # a single test: nothing to correct
    assert report.dataset["n_tested"] == 1
    assert report.dataset["insufficient_features"] == ["b"]


def test_missing_and_extra_columns():
    rng = np.random.default_rng(12)
    profile = dc.build_reference({"a": rng.normal(size=300)}, {"a": "numeric"})
    report = dc.compare(profile, {"z": rng.normal(size=300)})
    assert report.features["a"].status == dc.MISSING
    assert report.dataset["missing_features"] == ["a"]
    assert report.dataset["ignored"] == ["z"]


# --------------------------------------------------------------------------
# Drift scenarios
# --------------------------------------------------------------------------


def _scenario(shift_gradual, shift_large, seed=21, n_ref=100_000, n_cur=200_000):
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(30)]
    ref = rng.normal(size=(n_ref, 30))
    cur = rng.normal(size=(n_cur, 30))
    # f03 drifts gradually: its mean creeps from 0 to shift_gradual std.
    cur[:, 3] += np.linspace(0.0, shift_gradual, n_cur)
    cur[:, 17] += shift_large
    profile = dc.build_reference(
        {n: ref[:, j] for j, n in enumerate(names)}, dict.fromkeys(names, "numeric")
    )
    return profile, cur, names


def test_two_shifted_features_are_exactly_the_ones_flagged():
    profile, cur, names = _scenario(shift_gradual=0.4, shift_large=1.0)
    report = dc.compare_matrix(profile, cur, names)
    assert report.dataset["drifted_features"] == ["f03", "f17"]
    assert report.features["f03"].severity == "warning"
    assert report.features["f17"].severity == "critical"
    assert report.dataset["share_drifted"] == pytest.approx(2 / 30)
    assert report.dataset["drift"] is False  # 2/30 < 0.3 and no score column
    # Tiny but significant shifts are not drift: the effect guard holds them back.
    for name in names:
        if name not in ("f03", "f17"):
            assert report.features[name].drifted is False
            assert report.features[name].severity == "none"


def test_no_drift_flags_nothing():
    profile, cur, names = _scenario(shift_gradual=0.0, shift_large=0.0, seed=22)
    report = dc.compare_matrix(profile, cur, names)
    assert report.dataset["n_drifted"] == 0
    assert report.dataset["drift"] is False
    assert report.dataset["severity"] == "none"


def test_effect_guard_blocks_significant_but_tiny_shift():
    rng = np.random.default_rng(23)
    profile = _numeric_ref(rng.normal(size=100_000))
    res = dc.compare(profile, {"x": rng.normal(0.03, 1.0, size=1_000_000)}).features["x"]
    assert res.p_adjusted < 1e-10
    assert res.drifted is False


def test_dataset_verdict_by_share_and_by_score():
    rng = np.random.default_rng(24)
    names = ["a", "b", "c"]
    cols = {n: rng.normal(size=5000) for n in names} | {dc.SCORE: rng.uniform(size=5000)}
    profile = dc.build_reference(cols, dict.fromkeys(names, "numeric"))
    cur = {n: rng.normal(size=5000) for n in names} | {dc.SCORE: rng.uniform(size=5000)}
    cur["a"] = cur["a"] + 1.0  # one of four tested features: share 0.25 < 0.3
    report = dc.compare(profile, cur)
    assert report.dataset["drifted_features"] == ["a"]
    assert report.dataset["drift"] is False
    cur["b"] = cur["b"] + 1.0  # share 0.5
    assert dc.compare(profile, cur).dataset["drift"] is True
    cur = {n: rng.normal(size=5000) for n in names} | {dc.SCORE: rng.uniform(0.3, 1.0, 5000)}
    report = dc.compare(profile, cur)
    assert report.dataset["drifted_features"] == [dc.SCORE]
    assert report.dataset["score_drifted"] is True
    assert report.dataset["drift"] is True


def test_workers_do_not_change_results():
    profile, cur, names = _scenario(0.4, 1.0, seed=25, n_ref=5000, n_cur=20_000)
    serial = dc.compare_matrix(profile, cur, names, workers=1).to_dict()
    threaded = dc.compare_matrix(profile, cur, names, workers=3).to_dict()
    assert serial == threaded


# --------------------------------------------------------------------------
# Serialisation
# --------------------------------------------------------------------------


def test_profile_round_trip_and_summary():
    rng = np.random.default_rng(30)
    cols = {
        "num": np.r_[rng.normal(size=3000), [np.nan] * 3],
        "cat": rng.choice(3, size=3003).astype(float),
        "txt": rng.choice(["tcp", "udp", "icmp"], size=3003),
        dc.SCORE: rng.uniform(size=3003),
    }
    kinds = {"num": "numeric", "cat": "categorical", "txt": "categorical"}
    profile = dc.build_reference(cols, kinds, max_sample=1000, seed=3)
    blob = profile.to_bytes()
    again = dc.ReferenceProfile.from_bytes(blob)
    assert list(again.features) == list(profile.features)
    for name, feat in profile.features.items():
        other = again.features[name]
        assert other.kind == feat.kind and other.n == feat.n and other.n_missing == feat.n_missing
        if feat.kind == dc.NUMERIC:
            np.testing.assert_array_equal(other.sample, feat.sample)
            np.testing.assert_array_equal(other.edges, feat.edges)
            np.testing.assert_array_equal(other.proportions, feat.proportions)
            assert (other.mean, other.std) == (feat.mean, feat.std)
        else:
            np.testing.assert_array_equal(other.levels, feat.levels)
            np.testing.assert_array_equal(other.counts, feat.counts)
    cur = {k: v[::-1] for k, v in cols.items()}
    assert dc.compare(profile, cur).to_dict() == dc.compare(again, cur).to_dict()
    summary = profile.summary()
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert summary["features"]["num"]["n_missing"] == 3
    assert set(summary["features"]["cat"]["levels"]) == {"0", "1", "2"}
    assert set(summary["features"]["txt"]["levels"]) == {"tcp", "udp", "icmp"}
    assert len(summary["features"]["num"]["edges"]) == 9


def test_from_bytes_refuses_other_content():
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, header=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    with pytest.raises(ValueError):
        dc.ReferenceProfile.from_bytes(buf.getvalue())


def test_report_to_dict_is_strict_json():
    ref = np.full(300, 1.0)  # std 0 -> normalised Wasserstein undefined
    profile = _numeric_ref(ref)
    report = dc.compare(profile, {"x": np.full(300, 1.0)})
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data
    assert data["features"]["x"]["statistics"]["wasserstein_norm"] is None


# --------------------------------------------------------------------------
# Page-Hinkley
# --------------------------------------------------------------------------


def _stream(seed=40, before=3000, after=3000, shift=0.15):
    rng = np.random.default_rng(seed)
    base = rng.beta(2, 8, size=before + after)  # score-like values in (0, 1)
    base[before:] += shift
    return base


def test_page_hinkley_detects_mean_shift_soon_after_it():
    x = _stream()
    changes = dc.PageHinkley().update(x)
    assert changes, "no change detected"
    assert 3000 <= changes[0] < 3000 + 600


def test_page_hinkley_detects_decrease():
    x = _stream(shift=-0.15)
    x[:3000] += 0.15
    changes = dc.PageHinkley(mode="down").update(x)
    assert changes and 3000 <= changes[0] < 3600
    assert dc.PageHinkley(mode="up").update(x) == []


def test_page_hinkley_silent_on_stationary_noise():
    rng = np.random.default_rng(41)
    assert dc.PageHinkley().update(rng.beta(2, 8, size=100_000)) == []
    assert dc.PageHinkley().update(rng.normal(0.5, 0.1, size=100_000)) == []


@pytest.mark.parametrize("alpha", [1.0, 1.0 - 1e-4])
def test_page_hinkley_batch_split_invariant(alpha):
    rng = np.random.default_rng(42)
    # Several regime changes so the split points straddle resets too.
    x = np.concatenate([rng.normal(mu, 0.1, 2500) for mu in (0.2, 0.5, 0.1, 0.4, 0.4)])
    params = {"alpha": alpha, "threshold": 20.0}
    whole = dc.PageHinkley(**params).update(x)
    assert len(whole) >= 3
    det = dc.PageHinkley(**params)
    pieces, start = [], 0
    for size in rng.integers(1, 1500, size=100):
        if start >= x.size:
            break
        state = json.loads(json.dumps(det.state_dict(), allow_nan=False))
        det = dc.PageHinkley.from_state(state)
        pieces += det.update(x[start : start + size])
        start += int(size)
    pieces += det.update(x[start:])
    assert pieces == whole
    one_shot = dc.PageHinkley(**params)
    one_shot.update(x)
    assert det.state_dict() == one_shot.state_dict()


def test_page_hinkley_rejects_non_finite():
    with pytest.raises(ValueError):
        dc.PageHinkley().update([0.1, float("nan")])
