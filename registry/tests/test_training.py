import hashlib
import json
import pickle

import numpy as np
import pytest
import xgboost as xgb
from sklearn import metrics as skm

from registry import synthetic, training
from registry.training import ArtifactFormatError, load_booster


@pytest.fixture(scope="module")
def events():
    return synthetic.generate(20_000, seed=11)


@pytest.fixture(scope="module")
def result(events):
    return training.train(events, num_boost_round=50, seed=1)


def predict(booster, X, names):
    return booster.predict(xgb.DMatrix(X, feature_names=list(names)))


def test_a_small_model_separates_threats(result):
    assert result.metrics["auc"] > 0.8
    assert result.training_samples == 15_000
    assert result.validation_samples == 5_000
    assert result.training_duration_seconds > 0
    assert result.booster.num_boosted_rounds() == 50


def test_metrics_match_scikit_learn_on_the_same_predictions(result):
    y, scores, t = result.y_valid, result.valid_scores, result.threshold
    flagged = (scores >= t).astype(int)
    m = result.metrics
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, flagged))
    assert m["precision"] == pytest.approx(skm.precision_score(y, flagged))
    assert m["recall"] == pytest.approx(skm.recall_score(y, flagged))
    assert m["f1"] == pytest.approx(skm.f1_score(y, flagged))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, scores))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, scores), rel=1e-6)
    assert m["threshold"] == t
    assert m["positives"] == int(y.sum())


def test_auc_handles_tied_scores_like_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2_000)
    scores = np.round(rng.random(2_000) + 0.3 * y, 1)  # heavy ties
    assert training.roc_auc(y, scores) == pytest.approx(skm.roc_auc_score(y, scores))


def test_threshold_maximises_f1_on_validation(result):
    y, scores = result.y_valid, result.valid_scores
    candidates = np.unique(scores)
    flagged = scores[None, :] >= candidates[:, None]  # one row per candidate threshold
    tp = (flagged & (y == 1)).sum(axis=1)
    f1 = 2 * tp / (flagged.sum(axis=1) + y.sum())
    assert result.metrics["f1"] == pytest.approx(f1.max())
    assert result.threshold == pytest.approx(candidates[np.flatnonzero(f1 == f1.max()).max()])
    assert result.metrics["f1"] == pytest.approx(skm.f1_score(y, scores >= result.threshold))
    assert 0.0 < result.threshold < 1.0


def test_zero_division_matches_scikit_learn():
    y = np.array([0, 0, 1, 1])
    m = training.binary_metrics(y, np.array([0.1, 0.2, 0.3, 0.4]), threshold=0.9)
    assert m["precision"] == skm.precision_score(y, [0, 0, 0, 0], zero_division=0) == 0.0
    assert m["f1"] == 0.0


def test_split_is_stratified_and_groups_follow_rows(events, result):
    assert result.y_valid.mean() == pytest.approx(events.y.mean(), abs=0.002)
    assert result.valid_geo_region.shape == result.y_valid.shape
    assert result.X_valid.shape == (5_000, len(events.feature_names))
    assert np.allclose(
        result.valid_scores, predict(result.booster, result.X_valid, events.feature_names)
    )


def test_dataset_hash_is_the_documented_sha256(events, result):
    X = np.ascontiguousarray(events.X, dtype="<f8")
    header = json.dumps(
        {"features": list(events.feature_names), "shape": list(X.shape)},
        sort_keys=True,
        separators=(",", ":"),
    )
    digest = hashlib.sha256(b"govsite-dataset-v1\n" + header.encode())
    digest.update(X.tobytes())
    digest.update(events.y.astype(np.uint8).tobytes())
    assert result.dataset_hash == digest.hexdigest()
    changed = events.X.copy()
    changed[0, 0] += 1
    assert training.dataset_sha256(changed, events.y, events.feature_names) != result.dataset_hash


def test_tuple_input_and_progress_callback():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2_000, 3))
    y = (X[:, 0] + rng.normal(size=2_000) > 1).astype(int)
    groups = rng.choice(["A", "B"], 2_000)
    calls = []
    result = training.train(
        (X, y, groups),
        feature_names=["a", "b", "c"],
        num_boost_round=7,
        progress=lambda i, total: calls.append((i, total)),
    )
    assert calls == [(i, 7) for i in range(1, 8)]
    assert result.feature_names == ["a", "b", "c"]
    assert [f["name"] for f in result.feature_schema] == ["a", "b", "c"]
    assert set(result.valid_geo_region) == {"A", "B"}


def test_early_stopping_keeps_only_the_best_trees():
    events = synthetic.generate(5_000, seed=2)
    result = training.train(
        events, num_boost_round=300, early_stopping_rounds=5, params={"eta": 0.3}
    )
    assert result.booster.num_boosted_rounds() < 300
    assert result.hyperparameters["trees"] == result.booster.num_boosted_rounds()


def test_hyperparameters_and_registration_metadata_are_json_ready(result):
    assert result.hyperparameters["objective"] == "binary:logistic"
    assert result.hyperparameters["tree_method"] == "hist"
    assert result.hyperparameters["num_boost_round"] == 50
    payload = json.loads(json.dumps(result.registration_metadata()))
    assert payload["training_dataset_hash"] == result.dataset_hash
    assert payload["feature_schema"][9]["levels"] == list(synthetic.AUTH_LEVELS)


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_artifact_round_trips(tmp_path, events, result, suffix):
    path = tmp_path / f"model{suffix}"
    sha = result.save_artifact(path)
    raw = path.read_bytes()
    assert sha == hashlib.sha256(raw).hexdigest()
    booster = load_booster(raw, feature_names=events.feature_names)
    X = events.X[:500]
    assert np.array_equal(
        predict(booster, X, events.feature_names), predict(result.booster, X, events.feature_names)
    )
    assert float(booster.attr("decision_threshold")) == result.threshold


def test_artifact_path_must_name_a_native_format(tmp_path, result):
    with pytest.raises(ValueError):
        result.save_artifact(tmp_path / "model.pkl")


def not_a_booster_payloads(result):
    json_raw = result.artifact_bytes("json")
    ubj_raw = result.artifact_bytes("ubj")
    return {
        "pickle": pickle.dumps({"learner": 1}),
        "truncated json": json_raw[: len(json_raw) // 2],
        "truncated ubj": ubj_raw[: len(ubj_raw) // 2],
        "ubj missing last byte": ubj_raw[:-1],
        "ubj with trailing bytes": ubj_raw + b"\x00",
        "random bytes": np.random.default_rng(0).bytes(4096),
        "json, not a booster": json.dumps({"weights": [1, 2, 3]}).encode(),
        "json learner stub": b'{"learner": {}, "version": [3, 0, 0]}',
        "empty": b"",
        "text": b"hello",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "pickle",
        "truncated json",
        "truncated ubj",
        "ubj missing last byte",
        "ubj with trailing bytes",
        "random bytes",
        "json, not a booster",
        "json learner stub",
        "empty",
        "text",
    ],
)
def test_load_booster_refuses_anything_but_a_booster(result, kind):
    raw = not_a_booster_payloads(result)[kind]
    with pytest.raises(ArtifactFormatError):
        load_booster(raw)
    assert issubclass(ArtifactFormatError, ValueError)


def test_load_booster_checks_feature_names(result):
    with pytest.raises(ArtifactFormatError):
        load_booster(result.artifact_bytes("ubj"), feature_names=["x"] * 10)


def test_invalid_training_data_is_refused():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError):
        training.train((X, np.zeros(10)))  # one class
    with pytest.raises(ValueError):
        training.train((X, np.arange(10) % 3))  # not 0/1
    with pytest.raises(ValueError):
        training.train((np.full((10, 2), np.inf), np.arange(10) % 2))


@pytest.mark.slow
def test_region_proxy_makes_a_trained_model_fail_equal_fpr():
    def fpr_by_region(strength):
        events = synthetic.generate(
            120_000, seed=21, scenario=synthetic.Scenario(region_proxy=strength)
        )
        result = training.train(events, num_boost_round=100, seed=21)
        flagged = result.valid_scores >= result.threshold
        benign = result.y_valid == 0
        region = result.valid_geo_region
        return {r: flagged[benign & (region == r)].mean() for r in synthetic.REGIONS}

    fair = fpr_by_region(0.0)
    assert max(fair.values()) < 1.6 * min(fair.values())
    skewed = fpr_by_region(0.2)
    others = [v for r, v in skewed.items() if r != "APAC"]
    assert skewed["APAC"] > 1.5 * max(others)
