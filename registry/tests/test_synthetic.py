import json
import math

import numpy as np
import pytest

from registry import synthetic
from registry.synthetic import Drift, Scenario, generate


@pytest.fixture(scope="module")
def baseline():
    return generate(60_000, seed=5)


def column(events, name):
    return events.X[:, events.feature_names.index(name)]


def test_same_seed_gives_identical_events():
    a, b = generate(3_000, seed=3), generate(3_000, seed=3)
    assert np.array_equal(a.X, b.X)
    assert np.array_equal(a.y, b.y)
    assert np.array_equal(a.entity, b.entity)
    assert np.array_equal(a.timestamp, b.timestamp)
    assert np.array_equal(a.incident_id, b.incident_id)


def test_different_seed_or_scenario_gives_different_events_and_ids():
    a = generate(3_000, seed=3)
    b = generate(3_000, seed=4)
    c = generate(3_000, seed=3, scenario=Scenario(region_proxy=0.1))
    assert not np.array_equal(a.X, b.X)
    assert not set(a.request_id) & set(b.request_id)
    assert not set(a.request_id) & set(c.request_id)


def test_shapes_dtypes_and_schema(baseline):
    n = len(baseline)
    assert baseline.X.shape == (n, len(synthetic.FEATURE_SCHEMA))
    assert baseline.X.dtype == np.float64
    assert baseline.y.dtype == np.int8
    assert baseline.feature_names == tuple(f["name"] for f in synthetic.FEATURE_SCHEMA)
    assert baseline.timestamp.dtype == np.dtype("datetime64[s]")
    assert baseline.geo_region.shape == baseline.entity.shape == (n,)
    assert set(baseline.geo_region) == set(synthetic.REGIONS)
    assert "geo_region" not in baseline.feature_names
    assert len(set(baseline.incident_id)) == n
    assert all(e.startswith(("host-", "user-")) for e in baseline.entity[:100])


def test_noise_features_extend_the_schema():
    events = generate(2_000, seed=1, n_noise_features=20)
    assert events.X.shape[1] == 30
    assert events.feature_names[10:] == tuple(f"aux_{i:02d}" for i in range(20))
    assert [f["name"] for f in synthetic.schema(20)] == list(events.feature_names)
    assert abs(column(events, "aux_07").std() - 1.0) < 0.1


def test_feature_values_respect_their_types(baseline):
    for name in ("failed_logins", "bytes_out", "distinct_ports", "login_hour"):
        values = column(baseline, name)
        assert np.array_equal(values, np.round(values)) and values.min() >= 0
    assert column(baseline, "login_hour").max() <= 23
    assert column(baseline, "distinct_ports").min() >= 1
    for name in ("new_device", "privileged_account"):
        assert set(np.unique(column(baseline, name))) <= {0.0, 1.0}
    codes = column(baseline, "auth_method")
    assert set(np.unique(codes)) == set(range(len(synthetic.AUTH_LEVELS)))
    assert synthetic.schema()[9]["levels"] == ["password", "sso", "mfa", "key"]


def test_base_rate_is_low_and_labels_follow_the_logistic_model(baseline):
    assert 0.03 <= baseline.threat_rate <= 0.08
    p = synthetic.true_probability(baseline.X)
    assert abs(p.mean() - baseline.threat_rate) < 0.005
    top = p >= np.quantile(p, 0.9)
    assert abs(baseline.y[top].mean() - p[top].mean()) < 0.02


def test_true_logit_uses_the_documented_coefficients():
    c = synthetic.LABEL_COEFFICIENTS
    sso = synthetic.AUTH_LEVELS.index("sso")
    # f = 0, lb = 0, p = 0, daytime, entropy 3: only the intercept is left.
    quiet = np.array([[0, 100_000, 0, 12, 0, 0, 0, 0, 3.0, sso]], dtype=float)
    assert synthetic.true_logit(quiet)[0] == pytest.approx(c["intercept"])
    admin = quiet.copy()
    admin[0, 0] = math.e - 1  # log1p(failed_logins) = 1
    admin[0, 6] = 1
    expected = c["intercept"] + c["log1p_failed_logins"] + c["privileged_account"]
    expected += c["failed_x_privileged"]
    assert synthetic.true_logit(admin)[0] == pytest.approx(expected)
    travel = quiet.copy()
    travel[0, 4], travel[0, 5] = 1, 100 * (math.e - 1)  # v = 1
    expected = c["intercept"] + c["new_device"] + c["log1p_geo_velocity_per_100"]
    expected += c["new_device_x_velocity"]
    assert synthetic.true_logit(travel)[0] == pytest.approx(expected)
    night = quiet.copy()
    night[0, 1], night[0, 3] = 10_000_000, 2  # lb = 2, off-hours
    expected = c["intercept"] + 2 * c["log10_bytes_out_minus_5"] + c["off_hours"]
    expected += 2 * c["bytes_x_off_hours"]
    assert synthetic.true_logit(night)[0] == pytest.approx(expected)


def test_regions_have_unequal_sizes(baseline):
    shares = {r: np.mean(baseline.geo_region == r) for r in synthetic.REGIONS}
    assert shares["NA"] > shares["EU"] > shares["APAC"] > shares["LATAM"]
    assert shares["MEA"] < 0.12


def test_timestamps_cover_the_period_in_order_with_a_daily_rhythm():
    start = np.datetime64("2025-03-03T00:00:00", "s")
    events = generate(40_000, seed=2, start="2025-03-03T00:00:00", days=3)
    assert events.timestamp.min() >= start
    assert events.timestamp.max() < start + np.timedelta64(3 * 86400, "s")
    assert np.all(np.diff(events.timestamp.astype(np.int64)) >= 0)
    assert events.time_fraction.min() >= 0 and events.time_fraction.max() < 1
    hour = column(events, "login_hour")
    assert np.mean((hour >= 9) & (hour < 18)) > 0.5
    assert np.mean(hour < 5) < 0.1


def test_gradual_drift_shifts_only_the_chosen_feature():
    drift = Drift.gradual("dns_entropy", 2.0, start=0.5, end=0.8)
    base = generate(20_000, seed=9)
    drifted = generate(20_000, seed=9, scenario=Scenario(drifts=(drift,)))
    j = base.feature_names.index("dns_entropy")
    others = [k for k in range(base.X.shape[1]) if k != j]
    assert np.array_equal(base.X[:, others], drifted.X[:, others])
    std = synthetic.reference_stats()["dns_entropy"][1]
    shift = drifted.X[:, j] - base.X[:, j]
    t = base.time_fraction
    assert np.all(shift[t < 0.5] == 0)
    assert np.allclose(shift[t >= 0.8], 2.0 * std)
    middle = (t > 0.6) & (t < 0.7)
    assert np.allclose(shift[middle], 2.0 * std * (t[middle] - 0.5) / 0.3)
    # Covariate drift: labels follow the shifted features, so riskier entropy means more threats.
    assert drifted.y[t >= 0.8].mean() > base.y[t >= 0.8].mean()


def test_sudden_drift_is_a_step_at_the_chosen_time():
    drift = Drift.sudden("bytes_out", 1.0, at=0.5)
    base = generate(20_000, seed=9)
    drifted = generate(20_000, seed=9, scenario=Scenario(drifts=(drift,)))
    j = base.feature_names.index("bytes_out")
    shift = drifted.X[:, j] - base.X[:, j]
    before = base.time_fraction < 0.5
    std = synthetic.reference_stats()["bytes_out"][1]
    assert np.all(shift[before] == 0)
    assert abs(shift[~before].mean() - std) < 0.01 * std
    assert np.array_equal(drifted.X[:, j], np.round(drifted.X[:, j]))


@pytest.mark.parametrize("name, magnitude", [("failed_logins", 1.5), ("new_device", 0.5)])
def test_discrete_drift_moves_the_mean_by_magnitude_stds(name, magnitude):
    base = generate(80_000, seed=4)
    drifted = generate(80_000, seed=4, scenario=Scenario(drifts=(Drift(name, magnitude),)))
    late = base.time_fraction >= 0.9
    std = synthetic.reference_stats()[name][1]
    moved = column(drifted, name)[late].mean() - column(base, name)[late].mean()
    expected = magnitude * std * base.time_fraction[late].mean()
    assert moved == pytest.approx(expected, rel=0.1)


def test_categorical_drift_reassigns_events_to_the_level():
    drift = Drift.sudden("auth_method", 0.5, at=0.0, level="password")
    base = generate(40_000, seed=4)
    drifted = generate(40_000, seed=4, scenario=Scenario(drifts=(drift,)))
    password = synthetic.AUTH_LEVELS.index("password")
    before = np.mean(column(base, "auth_method") == password)
    after = np.mean(column(drifted, "auth_method") == password)
    assert after == pytest.approx(0.5 + 0.5 * before, abs=0.01)


def test_concept_drift_keeps_labels_and_moves_features():
    drift = Drift("geo_velocity", 1.0, affects_labels=False)
    base = generate(20_000, seed=6)
    drifted = generate(20_000, seed=6, scenario=Scenario(drifts=(drift,)))
    assert np.array_equal(base.y, drifted.y)
    assert column(drifted, "geo_velocity").mean() > column(base, "geo_velocity").mean()


def test_region_proxy_raises_only_that_regions_benign_velocity():
    base = generate(60_000, seed=8)
    proxy = generate(60_000, seed=8, scenario=Scenario(region_proxy=0.3, proxy_region="APAC"))
    assert np.array_equal(base.y, proxy.y)
    apac_benign = (base.geo_region == "APAC") & (base.y == 0)
    velocity = (column(base, "geo_velocity"), column(proxy, "geo_velocity"))
    assert velocity[1][apac_benign].mean() > velocity[0][apac_benign].mean() + 100
    assert column(proxy, "new_device")[apac_benign].mean() > 0.1
    untouched = ~apac_benign
    assert np.array_equal(base.X[untouched], proxy.X[untouched])


@pytest.mark.parametrize(
    "scenario",
    [
        lambda: Scenario(drifts=(Drift("no_such_feature", 1.0),)),
        lambda: Scenario(drifts=(Drift("auth_method", 0.3),)),
        lambda: Scenario(drifts=(Drift("bytes_out", 1.0, level="mfa"),)),
        lambda: Scenario(drifts=(Drift("bytes_out", 1.0, start=0.8, end=0.2),)),
        lambda: Scenario(region_proxy=1.5),
        lambda: Scenario(proxy_region="MARS"),
    ],
)
def test_invalid_scenarios_are_refused(scenario):
    with pytest.raises(ValueError):
        generate(100, scenario=scenario())


def test_records_are_json_ready_for_the_ingest_api():
    events = generate(500, seed=1)
    records = events.to_records(0, 3)
    assert len(records) == 3
    first = json.loads(json.dumps(records[0]))
    assert set(first) == {
        "request_id",
        "incident_id",
        "entity",
        "features",
        "attributes",
        "timestamp",
    }
    assert list(first["features"]) == list(events.feature_names)
    assert first["incident_id"] == events.incident_id[0]
    assert first["request_id"] == events.request_id[0]
    assert first["attributes"] == {"geo_region": events.geo_region[0]}
    assert first["timestamp"].endswith("Z")
    assert np.datetime64(first["timestamp"][:-1], "s") == events.timestamp[0]
    assert isinstance(first["features"]["failed_logins"], int)
    assert isinstance(first["features"]["dns_entropy"], float)
    assert list(first["features"].values()) == pytest.approx(events.X[0].tolist())
    named = events.to_records(0, 1, categorical="level")[0]
    assert named["features"]["auth_method"] in synthetic.AUTH_LEVELS


def test_split_partitions_rows_and_keeps_ids():
    events = generate(1_000, seed=1)
    train, rest = events.split(0.8, seed=3)
    assert (len(train), len(rest)) == (800, 200)
    assert not set(train.request_id) & set(rest.request_id)
    assert set(train.request_id) | set(rest.request_id) == set(events.request_id)
    assert np.all(np.diff(train.timestamp.astype(np.int64)) >= 0)
    early, late = events.split(0.5, by_time=True)
    assert early.timestamp.max() <= late.timestamp.min()


def test_to_frame_has_features_label_and_attributes():
    frame = generate(200, seed=1).to_frame()
    assert {"y", "geo_region", "entity", "incident_id", "timestamp"} <= set(frame.columns)
    assert frame.shape[0] == 200
