"""The structural checks of registry/tree_check.py on small hand-made models."""

import copy
import json

import pytest

from registry import tree_check
from registry.tree_check import ArtifactStructureError, check_artifact


def check_model(doc):
    return check_artifact(json.dumps(doc).encode(), "json")


def _tree(left, right, parents, num_feature=2):
    n = len(left)
    return {
        "left_children": left, "right_children": right, "parents": parents,
        "split_indices": [0] * n, "split_conditions": [0.5] * n, "default_left": [0] * n,
        "base_weights": [0.1] * n, "loss_changes": [0.0] * n, "sum_hessian": [1.0] * n,
        "split_type": [0] * n, "categories": [], "categories_nodes": [],
        "categories_segments": [], "categories_sizes": [],
        "tree_param": {"num_nodes": str(n), "num_feature": str(num_feature),
                       "size_leaf_vector": "1", "num_deleted": "0"},
    }  # fmt: skip


def _model(*trees, name="gbtree"):
    model = {
        "gbtree_model_param": {"num_trees": str(len(trees)), "num_parallel_tree": "1"},
        "tree_info": [0] * len(trees), "iteration_indptr": list(range(len(trees) + 1)),
        "trees": list(trees),
    }  # fmt: skip
    booster = {"name": "gbtree", "model": model}
    if name == "dart":
        booster = {"name": "dart", "gbtree": booster, "weight_drop": [1.0] * len(trees)}
    return {"learner": {"learner_model_param": {"num_feature": "2"}, "feature_names": ["a", "b"],
                        "gradient_booster": booster}}  # fmt: skip


STUMP = _tree([1, -1, -1], [2, -1, -1], [2147483647, 0, 0])


@pytest.mark.parametrize("name", ["gbtree", "dart"])
def test_it_accepts_a_stump_in_both_layouts(name):
    doc = _model(STUMP, STUMP, name=name)
    assert check_artifact(json.dumps(doc).encode(), "json")["nodes"] == 6


def test_it_refuses_a_cycle_that_the_root_does_not_reach():
    # Nodes 3 and 4 are each other's children: one parent each, unreachable from 0.
    tree = _tree([1, -1, -1, 4, 3], [2, -1, -1, 4, 3], [2147483647, 0, 0, 4, 3])
    with pytest.raises(ArtifactStructureError) as caught:
        check_model(_model(tree))
    assert caught.value.details["tree"] == 0


def test_it_refuses_a_node_that_the_root_does_not_reach():
    tree = _tree([1, -1, -1, -1], [2, -1, -1, -1], [2147483647, 0, 0, 0])
    with pytest.raises(ArtifactStructureError, match="not reachable") as caught:
        check_model(_model(tree))
    assert caught.value.details["node"] == 3


def test_it_refuses_a_tree_count_that_disagrees():
    doc = _model(STUMP)
    doc["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] = "5"
    with pytest.raises(ArtifactStructureError, match="num_trees"):
        check_model(doc)


def test_it_refuses_linear_boosters():
    doc = _model(STUMP)
    doc["learner"]["gradient_booster"] = {"name": "gblinear", "model": {"weights": [0.1]}}
    with pytest.raises(ArtifactStructureError, match="gbtree and dart"):
        check_model(doc)


def test_it_refuses_a_categorical_split_without_categories():
    tree = copy.deepcopy(STUMP)
    tree["split_type"][0] = 1
    with pytest.raises(ArtifactStructureError, match="without categories"):
        check_model(_model(tree))


def test_it_refuses_too_many_trees(monkeypatch):
    monkeypatch.setattr(tree_check, "MAX_TREES", 2)
    with pytest.raises(ArtifactStructureError, match="1..2 trees"):
        check_model(_model(STUMP, STUMP, STUMP))


@pytest.mark.parametrize("raw", [b"{i\x03abc", b"{i\x01a[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff}"])
def test_it_refuses_truncated_ubjson(raw):
    with pytest.raises(ArtifactStructureError, match="truncated"):
        check_artifact(raw, "ubj")


# Native crashes and huge allocations found by bench/fuzz_artifacts.py on artifacts the
# first version of the check accepted (each made XGBoost SIGSEGV, SIGABRT or allocate
# gigabytes when the booster predicted).
FUZZ_FINDINGS = [
    ("a tree id out of place", lambda m, lp: m["trees"][1].__setitem__("id", 0), "tree id"),
    ("a tree_info group 1", lambda m, lp: m["tree_info"].__setitem__(5, 1), "output group"),
    ("a tree_info group 2**31", lambda m, lp: m["tree_info"].__setitem__(5, 2**31), "group"),
    (
        "num_class 100000",
        lambda m, lp: lp["learner_model_param"].__setitem__("num_class", "100000"),
        "num_class",
    ),
    (
        "num_target -1",
        lambda m, lp: lp["learner_model_param"].__setitem__("num_target", "-1"),
        "num_target",
    ),
    (
        "base_score 1e400",
        lambda m, lp: lp["learner_model_param"].__setitem__("base_score", "1e400"),
        "base_score",
    ),
    (
        "iteration_indptr steps by 2",
        lambda m, lp: m.__setitem__("iteration_indptr", list(range(0, len(m["trees"]) + 1, 2))),
        "iteration_indptr",
    ),
]


@pytest.mark.parametrize("what, mutate, named", FUZZ_FINDINGS, ids=[f[0] for f in FUZZ_FINDINGS])
def test_the_fuzzers_findings_are_refused_before_xgboost_loads(trained, what, mutate, named):
    doc = json.loads(trained.artifact_bytes("json"))
    assert check_artifact(json.dumps(doc).encode(), "json")["trees"] > 5  # accepted as is
    learner = doc["learner"]
    mutate(learner["gradient_booster"]["model"], learner)
    with pytest.raises(ArtifactStructureError, match=named):
        check_artifact(json.dumps(doc).encode(), "json")
