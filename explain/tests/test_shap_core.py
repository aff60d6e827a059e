import json
import threading

import numpy as np
import pytest
import shap
import xgboost as xgb

from explain import shap_core
from explain.shap_core import AdditivityError, Explainer, check_additivity, contributions_to_api


def fit(X, y, names, rounds=40, seed=0):
    params = {
        "objective": "binary:logistic",
        "max_depth": 4,
        "eta": 0.2,
        "seed": seed,
        "nthread": 2,
    }
    return xgb.train(params, xgb.DMatrix(X, label=y, feature_names=names), rounds)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3_000, 6))
    X[:, 5] = rng.integers(0, 4, 3_000)  # an integer-coded categorical column
    logit = -2 + 1.5 * X[:, 0] - X[:, 1] + X[:, 2] * X[:, 3] + 0.5 * (X[:, 5] == 2)
    y = (rng.random(3_000) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y, ["a", "b", "c", "d", "e", "f"]


@pytest.fixture(scope="module")
def booster(data):
    X, y, names = data
    return fit(X, y, names)


@pytest.fixture(scope="module")
def batch(data, booster):
    return Explainer(booster).explain(data[0][:1_000])


def test_values_equal_shap_tree_explainer(data, booster, batch):
    X = data[0][:1_000]
    reference = shap.TreeExplainer(booster).shap_values(X)
    assert batch.values.shape == (1_000, 6)
    assert np.max(np.abs(batch.values - reference)) <= 1e-6


def test_base_plus_contributions_equals_the_margin(data, booster, batch):
    X = data[0][:1_000]
    margin = booster.predict(xgb.DMatrix(X, feature_names=data[2]), output_margin=True)
    assert np.allclose(batch.margin, margin)
    assert np.max(np.abs(batch.base_value + batch.values.sum(axis=1) - margin)) <= 1e-4
    assert np.allclose(batch.probability, booster.predict(xgb.DMatrix(X, feature_names=data[2])))
    assert batch.method == "tree_path_dependent"


def test_a_single_row_can_be_explained(data, booster):
    single = Explainer(booster).explain(data[0][7])
    assert single.values.shape == (1, 6)


def test_check_additivity_accepts_consistent_and_refuses_inconsistent_margins():
    contributions = np.array([[0.5, -0.25], [1.0, 0.0]])
    margin = np.array([-0.75, 0.0])
    residual = check_additivity(-1.0, contributions, margin)
    assert np.allclose(residual, 0)
    with pytest.raises(AdditivityError, match="1 of 2 rows"):
        check_additivity(-1.0, contributions, margin + np.array([0, 1e-3]))
    with pytest.raises(AdditivityError):
        check_additivity(-1.0, contributions, np.array([np.nan, 0.0]))


def test_explaining_with_the_wrong_model_raises(data, booster):
    X, y, names = data
    other = fit(X, 1 - y, names, seed=1)
    explainer = Explainer(booster)
    explainer.booster = other  # margins now come from a different version
    with pytest.raises(AdditivityError):
        explainer.explain(X[:50])


def test_api_piece_orders_and_limits_contributions():
    names = [f"x{i}" for i in range(9)]
    values = np.array([0.3, -0.1, 0.9, 0.0, -0.7, 0.05, 0.2, 0.1, -0.7])
    api = contributions_to_api(names, values)
    assert api["top_positive"] == [
        ["x2", 0.9],
        ["x0", 0.3],
        ["x6", 0.2],
        ["x7", 0.1],
        ["x5", 0.05],
    ]
    assert api["top_negative"] == [["x4", -0.7], ["x8", -0.7], ["x1", -0.1]]
    assert list(api["all_features"]) == ["x2", "x4", "x8", "x0", "x6", "x1", "x7", "x5", "x3"]
    assert api["all_features"]["x3"] == 0.0
    json.dumps(api)


def test_batch_to_api_and_row_match_the_values(batch):
    api = batch.to_api(3)
    assert len(api["top_positive"]) <= 5 and len(api["top_negative"]) <= 5
    assert all(v > 0 for _, v in api["top_positive"])
    assert all(v < 0 for _, v in api["top_negative"])
    magnitudes = [abs(v) for v in api["all_features"].values()]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert api["all_features"]["a"] == pytest.approx(batch.values[3, 0])
    row = json.loads(json.dumps(batch.row(3)))
    assert row["margin"] == pytest.approx(batch.base_value + batch.values[3].sum(), abs=1e-4)
    assert row["feature_values"]["a"] == batch.data[3, 0]
    importance = list(batch.global_importance().values())
    assert importance == sorted(importance, reverse=True)


def test_interventional_explanations_are_additive_against_the_background(data, booster):
    X, _, names = data
    background = X[-200:]
    explainer = Explainer(booster, background=background)
    batch = explainer.explain(X[:100])
    assert batch.method == "interventional"
    assert batch.base_value == pytest.approx(explainer.margin(background).mean(), abs=1e-5)
    assert np.max(np.abs(batch.base_value + batch.values.sum(axis=1) - batch.margin)) <= 1e-4
    masker = shap.maskers.Independent(background, max_samples=200)
    reference = shap.TreeExplainer(
        booster, data=masker, feature_perturbation="interventional", model_output="raw"
    ).shap_values(X[:100])
    assert np.max(np.abs(batch.values - reference)) <= 1e-6


def test_feature_count_must_match_the_model(data, booster):
    with pytest.raises(ValueError):
        Explainer(booster, ["a", "b"])
    with pytest.raises(ValueError):
        Explainer(booster).explain(np.zeros((2, 5)))


def test_get_explainer_builds_once_per_artifact(booster):
    shap_core._EXPLAINERS.clear()
    calls = []

    def loader():
        calls.append(1)
        return booster

    first = shap_core.get_explainer("sha-a", loader)
    assert shap_core.get_explainer("sha-a", loader) is first
    assert shap_core.get_explainer("sha-b", loader) is not first
    assert len(calls) == 2


def test_cache_evicts_the_least_recently_used_entry():
    cache = shap_core.ExplainerCache(maxsize=2)
    cache.get("a", lambda: "A")
    cache.get("b", lambda: "B")
    cache.get("a", lambda: "A2")  # refreshes a
    cache.get("c", lambda: "C")  # evicts b
    assert cache.get("a", lambda: "A3") == "A"
    assert cache.get("b", lambda: "B2") == "B2"
    assert len(cache) == 2


def test_cache_builds_a_key_once_under_concurrency():
    cache = shap_core.ExplainerCache(maxsize=4)
    built, results = [], []
    gate = threading.Barrier(8)

    def slow_factory():
        built.append(1)
        threading.Event().wait(0.05)
        return object()

    def worker():
        gate.wait()
        results.append(cache.get("same", slow_factory))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert len({id(r) for r in results}) == 1


def test_a_failed_build_is_not_cached():
    cache = shap_core.ExplainerCache()

    def broken():
        raise OSError("artifact store down")

    with pytest.raises(OSError):
        cache.get("k", broken)
    assert cache.get("k", lambda: "ok") == "ok"


def test_a_booster_reloaded_from_ubjson_explains_identically(data, booster, batch):
    reloaded = xgb.Booster()
    reloaded.load_model(bytearray(booster.save_raw("ubj")))
    again = Explainer(reloaded).explain(data[0][:1_000])
    assert np.max(np.abs(again.values - batch.values)) <= 1e-6
    assert again.base_value == pytest.approx(batch.base_value, abs=1e-6)


def test_small_batches_take_the_single_threaded_path_with_identical_results(data, booster):
    explainer = Explainer(booster)
    rows = data[0][: shap_core.SMALL_BATCH + 10]
    large = explainer.explain(rows)
    for i in (0, 7, shap_core.SMALL_BATCH + 3):
        small = explainer.explain(rows[i])
        assert np.max(np.abs(small.values[0] - large.values[i])) <= 1e-9
        assert small.base_value == pytest.approx(large.base_value, abs=1e-9)
        assert small.margin[0] == pytest.approx(large.margin[i], abs=1e-9)
    assert booster.num_features() == explainer.booster.num_features()
