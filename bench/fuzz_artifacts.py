"""Structure-aware fuzzing of XGBoost model artifacts (docs/faults.md, "Extended fuzzing").

    .venv/bin/python bench/fuzz_artifacts.py --examples 2000 --seed 1 --out var/fuzz/artifacts.jsonl
    .venv/bin/python bench/fuzz_artifacts.py --replay var/fuzz/artifacts.jsonl.d/crash-0001.json

A real model (``registry.synthetic.generate`` + ``registry.training.train``, a few
rounds, trained in a subprocess) is saved as JSON and UBJSON. Hypothesis draws plans of
1-4 mutations of its trees and layout (child indices, parents, split indices, split
conditions incl. NaN/inf/huge, array lengths, ``num_nodes``, ``num_trees``,
``tree_info``, ``iteration_indptr``, categorical splits, deleted and duplicated keys,
type swaps, deep chains and large trees, extra trees, dart wrappers, learner
parameters), optionally followed by a byte-level mutation (truncation, a flipped byte,
a corrupted UBJSON count). Each mutated artifact is run in a forked child with an
address-space limit (``RLIMIT_AS``: the child's size at fork plus ``--memory-limit``)
and a timeout: ``tree_check.check_artifact``, then ``training.load_booster`` (with the
model's feature names, as the registry calls it), ``booster.predict`` and
``explain.shap_core.Explainer`` (TreeSHAP with its additivity check) on 6 rows (the
single-threaded path) and 40 rows (the multi-threaded path).

Outcomes: *refused* (``ArtifactFormatError``: by the structural check, by XGBoost's own
parser, or for its feature names), *accepted* (predicted and explained), or a *crash*:
the child killed by a signal, past the memory limit, past the timeout, or raising
anything but ``ArtifactFormatError`` once ``tree_check`` accepted the artifact (XGBoost
or SHAP failing, an ``AdditivityError``). Peak memory is the child's RSS high-water mark
above its RSS at fork; it must stay within ``--bound-factor`` times the artifact's size
plus ``--bound-floor`` MiB (docs/faults.md: parsing peaks at about 10x the file). Every
example is one JSON line in ``--out``; crashing artifacts are kept beside it
(``<out>.d/``) with their plan, for ``--replay``.

The forking parent imports XGBoost and SHAP but never runs them (an OpenMP pool in the
parent would not survive ``fork``), so the model is trained in a subprocess.
"""

from __future__ import annotations

import argparse
import copy
import faulthandler
import json
import math
import os
import re
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

Doc = dict[str, Any]
Plan = dict[str, Any]
NAN, INF = float("nan"), float("inf")


# --------------------------------------------------------------------------- setup


def configure() -> None:
    """Django settings with a scratch state folder (load_booster's module needs them)."""
    os.environ["GOVSITE_VAR_DIR"] = tempfile.mkdtemp(prefix="fuzz-artifacts-")
    os.environ.pop("DATABASE_URL", None)
    os.environ["CELERY_BROKER_URL"] = "filesystem://"
    os.environ.setdefault("SECRET_KEY", "fuzz-" + "x" * 50)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "govsite.settings")
    import django

    django.setup()


def train_into(folder: Path, rounds: int) -> None:
    """Subprocess body: train the seed model and write model.json, model.ubj, rows.npy."""
    configure()
    from registry import synthetic
    from registry.training import train

    result = train(synthetic.generate(6000, seed=7), num_boost_round=rounds, seed=7)
    (folder / "model.json").write_bytes(result.artifact_bytes("json"))
    (folder / "model.ubj").write_bytes(result.artifact_bytes("ubj"))
    rows = synthetic.generate(200, seed=8).X[:40].astype(np.float64)
    rows[3, :] = np.nan  # every split takes its default direction
    rows[4, :] = 3e38  # near float32 max (XGBoost refuses larger rows)
    rows[5, :] = -3e38
    rows[6, :] = np.arange(rows.shape[1]) % 4  # category-like values
    np.save(folder / "rows.npy", rows)


@dataclass
class Seed:
    doc: Doc
    json_bytes: bytes
    ubj_bytes: bytes
    names: list[str]
    rows: np.ndarray


def seed_model(rounds: int) -> Seed:
    with tempfile.TemporaryDirectory(prefix="fuzz-seed-") as tmp:
        folder = Path(tmp)
        subprocess.run(
            [sys.executable, __file__, "--_train", str(folder), "--rounds", str(rounds)],
            check=True,
            cwd=ROOT,
        )
        raw = (folder / "model.json").read_bytes()
        doc = json.loads(raw)
        return Seed(
            doc=doc,
            json_bytes=raw,
            ubj_bytes=(folder / "model.ubj").read_bytes(),
            names=list(doc["learner"]["feature_names"]),
            rows=np.load(folder / "rows.npy"),
        )


# --------------------------------------------------------------------------- writers


class Pairs(list[tuple[str, Any]]):
    """An object written with these (key, value) pairs, duplicates included."""


@dataclass(frozen=True)
class Nested:
    """``depth`` nested empty arrays, written without recursion."""

    depth: int


@dataclass(frozen=True)
class Typed:
    """A list written as a UBJSON typed array of ``marker`` (JSON: a plain list)."""

    values: list[Any]
    marker: str


def _items(obj: dict[str, Any] | Pairs) -> list[tuple[str, Any]]:
    return list(obj) if isinstance(obj, Pairs) else list(obj.items())


def to_json(value: Any) -> bytes:
    out: list[str] = []

    def write(v: Any) -> None:
        if isinstance(v, (dict, Pairs)):
            out.append("{")
            for i, (k, item) in enumerate(_items(v)):
                out.append(("," if i else "") + json.dumps(k) + ":")
                write(item)
            out.append("}")
        elif isinstance(v, Typed):
            write(v.values)
        elif isinstance(v, Nested):
            out.append("[" * v.depth + "]" * v.depth)
        elif isinstance(v, list):
            out.append("[")
            for i, item in enumerate(v):
                out.append("," if i else "")
                write(item)
            out.append("]")
        else:
            out.append(json.dumps(v))  # NaN and Infinity as XGBoost's writer spells them

    write(value)
    return "".join(out).encode()


# Typed arrays as XGBoost's own UBJSON writer lays them out (others are untyped).
UBJ_TYPED = {
    **dict.fromkeys(("left_children", "right_children", "parents", "split_indices",
                     "categories", "categories_nodes", "sorted_idx", "feature_segments"), "l"),
    **dict.fromkeys(("categories_segments", "categories_sizes"), "L"),
    **dict.fromkeys(("default_left", "split_type"), "U"),
    **dict.fromkeys(("base_weights", "loss_changes", "split_conditions", "sum_hessian"), "d"),
}  # fmt: skip
UBJ_DTYPES = {"i": ">i1", "U": ">u1", "I": ">i2", "l": ">i4", "L": ">i8", "d": ">f4", "D": ">f8"}


def _ubj_len(n: int) -> bytes:
    return b"L" + struct.pack(">q", n)


def _ubj_str(text: str) -> bytes:
    raw = text.encode()
    return _ubj_len(len(raw)) + raw


def _typed(values: list[Any], marker: str) -> bytes | None:
    """The typed array, or None when a value is not a number of that type."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    dtype = np.dtype(UBJ_DTYPES[marker])
    if dtype.kind in "iu":
        if not all(isinstance(v, int) or float(v).is_integer() for v in values):
            return None
        info = np.iinfo(dtype)
        if not all(info.min <= v <= info.max for v in values):
            return None
    with np.errstate(all="ignore"):
        data = np.asarray(values, dtype=np.float64 if dtype.kind == "f" else np.int64)
        packed = data.astype(dtype).tobytes()
    return b"[$" + marker.encode() + b"#" + _ubj_len(len(values)) + packed


def to_ubj(value: Any, key: str = "") -> bytes:
    if isinstance(value, (dict, Pairs)):
        return b"{" + b"".join(_ubj_str(k) + to_ubj(v, k) for k, v in _items(value)) + b"}"
    if isinstance(value, Nested):
        return b"[" * value.depth + b"]" * value.depth
    if isinstance(value, Typed) or (isinstance(value, list) and key in UBJ_TYPED):
        values, marker = (
            (value.values, value.marker) if isinstance(value, Typed) else (value, UBJ_TYPED[key])
        )
        typed = _typed(values, marker)
        if typed is not None:
            return typed
        value = values
    if isinstance(value, list):
        return b"[" + b"".join(to_ubj(v) for v in value) + b"]"
    if value is None:
        return b"Z"
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return b"L" + struct.pack(">q", value)
        return b"D" + struct.pack(">d", float(value))
    if isinstance(value, float):
        return b"D" + struct.pack(">d", value)
    return b"S" + _ubj_str(str(value))


# --------------------------------------------------------------------------- mutations

INDEX_VALUES: list[Any] = [
    -1, 0, 1, 2, -2, "self", "parent", "sibling", "n-1", "n", "n+1", 2**31 - 1, 2**31,
    2**32, -(2**31), 2**63 - 1, 2**64, 1.5, NAN, INF, "7", None, True,
]  # fmt: skip
FLOAT_VALUES: list[Any] = [
    NAN, INF, -INF, 1e308, -1e308, 3.4028235e38, 1e39, -1e39, 5e-324, 1e-45, -0.0, 0.0,
    1.0, -1.0, 1e20, "1.0", None,
]  # fmt: skip
PARAM_VALUES: list[Any] = [
    "n-1", "n+1", "0", "-1", "1", "2", "131072", "131073", "10001", "2000001", "abc", "1.5",
    "1e3", " 5", "", "n", 5, None, "99999999999999999999",
]  # fmt: skip
NODE_KEYS = [
    "left_children", "right_children", "parents", "split_indices", "split_conditions",
    "default_left", "base_weights", "loss_changes", "sum_hessian", "split_type",
    "categories", "categories_nodes", "categories_segments", "categories_sizes",
]  # fmt: skip
TREE_KEYS = [*NODE_KEYS, "tree_param", "id"]
SWAP_VALUES: list[Any] = [
    {}, [], "x", 0, 1.5, None, True, [[]], ["a", "b"], [1, [2]], "nested-65", "nested-5000",
    [NAN], [1e300] * 3, {"a": 1},
]  # fmt: skip
LEARNER_PARAMS: dict[str, list[Any]] = {
    "base_score": ["NaN", "inf", "-inf", "1e400", "abc", "[5E-1]", "[1,2]", "0.5", "2", "-1",
                   "[NaN]", "[]", "0", "1", "", 0.5],
    "num_class": ["0", "1", "2", "3", "-1", "abc", "100000"],
    "num_target": ["0", "1", "2", "-1", "abc", "100000"],
    "num_feature": ["0", "9", "11", "100001", "abc", "-1", "10.0"],
    "boost_from_average": ["0", "1", "2", "abc"],
}  # fmt: skip
CATEGORY_VALUES: list[Any] = [
    0, 1, 2, 3, 31, 32, 63, 64, 1000, 2**16, 2**24, 2**31 - 1, 2**31, -1, -(2**31), 1.5, NAN,
]  # fmt: skip
COUNT_VALUES = [0, 1, 2**31, 2**62, 2**63 - 1, -1, -(2**63)]
OBJECTIVES = [
    "reg:squarederror", "reg:logistic", "binary:logitraw", "binary:hinge", "multi:softprob",
    "multi:softmax", "rank:pairwise", "survival:aft", "survival:cox", "reg:quantileerror",
    "reg:tweedie", "count:poisson", "nonexistent", "",
]  # fmt: skip
PATHS = [
    ("learner",), ("learner", "learner_model_param"), ("learner", "objective"),
    ("learner", "gradient_booster"), ("learner", "gradient_booster", "model"),
    ("learner", "gradient_booster", "model", "gbtree_model_param"),
    ("learner", "gradient_booster", "model", "cats"), ("learner", "attributes"),
    ("tree",), ("tree", "tree_param"),
]  # fmt: skip


@dataclass
class Ctx:
    """The document being mutated and what the mutations need to know about it."""

    doc: Doc
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> Doc:
        booster = self.doc["learner"]["gradient_booster"]
        if isinstance(booster, dict) and isinstance(booster.get("gbtree"), dict):
            booster = booster["gbtree"]
        model: Doc = booster["model"]
        return model

    @property
    def trees(self) -> list[Any]:
        trees: list[Any] = self.model["trees"]
        return trees

    def tree(self, t: int) -> Doc:
        tree: Doc = self.trees[t % len(self.trees)]
        return tree

    def resize_layout(self) -> None:
        """num_trees, tree_info and iteration_indptr consistent with the trees."""
        count = len(self.trees)
        self.model["gbtree_model_param"]["num_trees"] = str(count)
        self.model["tree_info"] = [0] * count
        self.model["iteration_indptr"] = list(range(count + 1))


def _n(tree: Doc) -> int:
    return len(tree["left_children"])


def resolve(value: Any, tree: Doc, node: int) -> Any:
    """A symbolic index (``"self"``, ``"n+1"`` …) for this tree and node."""
    if not isinstance(value, str) or value in ("7", "1.0", "abc", "") or value[0].isdigit():
        return value
    n = _n(tree)
    parents = tree.get("parents")
    parent = parents[node] if isinstance(parents, list) and node < len(parents) else 0
    parent = parent if isinstance(parent, int) and 0 <= parent < n else 0
    sibling = node + 1 if node + 1 < n else 0
    return {"self": node, "parent": parent, "sibling": sibling, "n-1": n - 1, "n": n,
            "n+1": n + 1}.get(value, value)  # fmt: skip


def _set(tree: Doc, key: str, node: int, value: Any) -> None:
    array = tree.get(key)
    if isinstance(array, list) and array:
        array[node % len(array)] = resolve(value, tree, node % len(array))


def _internal(tree: Doc, node: int) -> int:
    """An internal node (``node`` modulo their number), or the root."""
    left = tree.get("left_children")
    internal = [i for i, c in enumerate(left) if c != -1] if isinstance(left, list) else []
    return internal[node % len(internal)] if internal else 0


def chain(depth: int, num_feature: int) -> Doc:
    """One path of ``depth`` splits, each with a leaf on its left (as the tests build)."""
    n = 2 * depth + 1
    left, right, parents = [-1] * n, [-1] * n, [2147483647] + [0] * (n - 1)
    for level in range(depth):
        node = 2 * level
        left[node], right[node] = node + 1, node + 2
        parents[node + 1] = parents[node + 2] = node
    return _tree(left, right, parents, num_feature)


def complete(depth: int, num_feature: int) -> Doc:
    """A complete tree of ``depth`` levels of splits (2^(depth+1)-1 nodes)."""
    n = 2 ** (depth + 1) - 1
    inner = 2**depth - 1
    left = [2 * i + 1 if i < inner else -1 for i in range(n)]
    right = [2 * i + 2 if i < inner else -1 for i in range(n)]
    parents = [2147483647] + [(i - 1) // 2 for i in range(1, n)]
    return _tree(left, right, parents, num_feature)


def _tree(left: list[int], right: list[int], parents: list[int], num_feature: int) -> Doc:
    n = len(left)
    return {
        "base_weights": [0.01 * (i % 7) for i in range(n)], "categories": [],
        "categories_nodes": [], "categories_segments": [], "categories_sizes": [],
        "default_left": [i % 2 for i in range(n)], "id": 0, "left_children": left,
        "right_children": right, "parents": parents, "loss_changes": [0.0] * n,
        "split_conditions": [0.5 + (i % 3) for i in range(n)],
        "split_indices": [i % num_feature for i in range(n)], "split_type": [0] * n,
        "sum_hessian": [1.0] * n,
        "tree_param": {"num_deleted": "0", "num_feature": str(num_feature),
                       "num_nodes": str(n), "size_leaf_vector": "1"},
    }  # fmt: skip


def _swap_value(value: Any) -> Any:
    if value == "nested-65":
        return Nested(65)
    if value == "nested-5000":
        return Nested(5000)
    return copy.deepcopy(value)


def _at(ctx: Ctx, path: tuple[str, ...], t: int) -> Any:
    if path[0] == "tree":
        node: Any = ctx.tree(t)
        path = path[1:]
    else:
        node = ctx.doc
    for key in path:
        if not isinstance(node, dict) or not isinstance(node.get(key), dict):
            return None
        node = node[key]
    return node


def apply(ctx: Ctx, mutation: list[Any]) -> None:
    """Apply one drawn mutation (``[kind, *args]``) to ``ctx.doc`` in place."""
    kind, *args = mutation
    handler = MUTATIONS[kind]
    handler(ctx, *args)


def m_child(ctx: Ctx, t: int, node: int, side: str, value: Any) -> None:
    tree = ctx.tree(t)
    _set(tree, f"{side}_children", _internal(tree, node) if node % 2 else node, value)


def m_swap_children(ctx: Ctx, t: int, a: int, b: int) -> None:
    tree = ctx.tree(t)
    left, right = tree["left_children"], tree["right_children"]
    if isinstance(left, list) and isinstance(right, list) and left and right:
        a, b = a % len(left), b % len(right)
        left[a], right[b] = right[b], left[a]


def m_parent(ctx: Ctx, t: int, node: int, value: Any) -> None:
    _set(ctx.tree(t), "parents", node, value)


def m_split_index(ctx: Ctx, t: int, node: int, value: Any) -> None:
    tree = ctx.tree(t)
    _set(tree, "split_indices", _internal(tree, node), 10 if value == "n" else value)


def m_float(ctx: Ctx, t: int, key: str, node: int, value: Any) -> None:
    _set(ctx.tree(t), key, node, value)


def m_small(ctx: Ctx, t: int, key: str, node: int, value: Any) -> None:
    tree = ctx.tree(t)
    _set(tree, key, _internal(tree, node), value)


def m_categorical(
    ctx: Ctx, t: int, node: int, cats: list[Any], seg: Any, size: Any, node_shift: int
) -> None:
    """Make an internal node a categorical split with the drawn categories."""
    tree = ctx.tree(t)
    target = _internal(tree, node)
    if isinstance(tree.get("split_type"), list) and tree["split_type"]:
        tree["split_type"][target % len(tree["split_type"])] = 1
    tree["categories"] = list(cats)
    tree["categories_nodes"] = [target + node_shift]
    tree["categories_segments"] = [seg]
    tree["categories_sizes"] = [len(cats) if size == "len" else size]


def m_feature_types(ctx: Ctx, value: Any) -> None:
    ctx.doc["learner"]["feature_types"] = copy.deepcopy(value)


def m_resize(ctx: Ctx, t: int, key: str, op: str) -> None:
    tree = ctx.tree(t)
    array = tree.get(key)
    if not isinstance(array, list):
        return
    if op == "drop" and array:
        array.pop()
    elif op == "append":
        array.append(array[-1] if array else 0)
    elif op == "empty":
        array.clear()
    elif op == "double":
        array.extend(list(array))
    elif op == "half":
        del array[len(array) // 2 :]


def m_resize_all(ctx: Ctx, t: int, delta: int) -> None:
    """Every node array one longer/shorter, num_nodes kept or updated."""
    tree = ctx.tree(t)
    for key in NODE_KEYS[:10]:
        array = tree.get(key)
        if isinstance(array, list) and array:
            if delta > 0:
                array.extend([-1 if "children" in key else array[-1]] * delta)
            else:
                del array[delta:]
    if isinstance(tree.get("tree_param"), dict) and t % 2:
        tree["tree_param"]["num_nodes"] = str(_n(tree))


def _param(value: Any, current: Any) -> Any:
    try:
        n = int(str(current))
    except ValueError:
        n = 1
    return {"n-1": str(n - 1), "n+1": str(n + 1), "n": n}.get(value, value)


def m_tree_param(ctx: Ctx, t: int, key: str, value: Any) -> None:
    params = ctx.tree(t).get("tree_param")
    if isinstance(params, dict):
        params[key] = _param(value, params.get(key))


def m_num_trees(ctx: Ctx, value: Any) -> None:
    params = ctx.model["gbtree_model_param"]
    params["num_trees"] = _param(value, params.get("num_trees"))


def m_list_field(ctx: Ctx, key: str, op: str, index: int, value: Any) -> None:
    """tree_info or iteration_indptr: set an entry, drop, append, reverse, empty."""
    array = ctx.model.get(key)
    if not isinstance(array, list):
        return
    if op == "set" and array:
        array[index % len(array)] = value
    elif op == "drop" and array:
        array.pop(index % len(array))
    elif op == "append":
        array.append(value)
    elif op == "reverse":
        array.reverse()
    elif op == "empty":
        array.clear()


def m_delete(ctx: Ctx, path: tuple[str, ...], t: int, pick: int) -> None:
    node = _at(ctx, path, t)
    if isinstance(node, dict) and node:
        keys = sorted(node)
        del node[keys[pick % len(keys)]]


def m_delete_tree_key(ctx: Ctx, t: int, key: str) -> None:
    ctx.tree(t).pop(key, None)


def m_type_swap(ctx: Ctx, path: tuple[str, ...], t: int, pick: int, value: Any) -> None:
    node = _at(ctx, path, t)
    if isinstance(node, dict) and node:
        keys = sorted(node)
        node[keys[pick % len(keys)]] = _swap_value(value)


def m_tree_key_swap(ctx: Ctx, t: int, key: str, value: Any) -> None:
    ctx.tree(t)[key] = _swap_value(value)


def m_int_as_float(ctx: Ctx, t: int, key: str, typed: bool) -> None:
    """An integer array written with floats (3.0), or as a float64 UBJSON typed array."""
    tree = ctx.tree(t)
    array = tree.get(key)
    if isinstance(array, list):
        values = [float(v) if isinstance(v, (int, float)) else v for v in array]
        tree[key] = Typed(values, "D") if typed else values


def m_retype(ctx: Ctx, t: int, key: str, marker: str) -> None:
    """A node array written as a UBJSON typed array of another element type."""
    tree = ctx.tree(t)
    if isinstance(tree.get(key), list):
        tree[key] = Typed(list(tree[key]), marker)


def m_duplicate(ctx: Ctx, t: int, key: str, hostile: Any, hostile_first: bool) -> None:
    """A tree key written twice: the original value and a hostile one, in either order."""
    index = t % len(ctx.trees)
    tree = ctx.trees[index]
    if not isinstance(tree, dict) or key not in tree:
        return
    original = tree[key]
    bad: Any
    if key == "tree_param" and isinstance(original, dict):
        bad = {**original, "num_nodes": str(hostile if isinstance(hostile, int) else 100000)}
    elif isinstance(original, list) and original:
        bad = list(original)
        bad[0] = hostile
    else:
        bad = hostile
    pairs = Pairs()
    for k, v in tree.items():
        if k == key:
            pairs.extend([(k, bad), (k, v)] if hostile_first else [(k, v), (k, bad)])
        else:
            pairs.append((k, v))
    ctx.trees[index] = pairs


def m_replace_tree(ctx: Ctx, t: int, shape: str, depth: int) -> None:
    num_feature = int(ctx.doc["learner"]["learner_model_param"]["num_feature"])
    tree = chain(depth, num_feature) if shape == "chain" else complete(depth, num_feature)
    tree["id"] = t % len(ctx.trees)
    ctx.trees[t % len(ctx.trees)] = tree


def m_trees(ctx: Ctx, op: str, count: int, consistent: bool) -> None:
    """Add copies of the trees or remove trees, with the layout updated or not."""
    trees = ctx.trees
    if op == "add":
        # Up to 2.5 million nodes in all (past MAX_TOTAL_NODES, within the parent's means).
        base, total = list(trees), sum(_size(tree) for tree in trees)
        for i in range(count):
            tree = base[i % len(base)]
            total += _size(tree)
            if total > 2_500_000:
                break
            trees.append(copy.deepcopy(tree))
    else:
        del trees[max(0, len(trees) - count) :]
    if consistent:  # ids renumbered too (a duplicated id is its own mutation)
        for index, tree in enumerate(trees):
            if isinstance(tree, dict):
                tree["id"] = index
        ctx.resize_layout()


def _size(tree: Any) -> int:
    left = tree.get("left_children") if isinstance(tree, dict) else None
    return len(left) if isinstance(left, list) else 1


def m_learner_param(ctx: Ctx, key: str, value: Any) -> None:
    ctx.doc["learner"]["learner_model_param"][key] = value


def m_objective(ctx: Ctx, name: str) -> None:
    objective = ctx.doc["learner"]["objective"]
    if isinstance(objective, dict):
        objective["name"] = name


def m_dart(ctx: Ctx, delta: int, weight: Any) -> None:
    """Wrap the gbtree in a dart booster whose weight_drop may be short or hostile."""
    gbtree = ctx.doc["learner"]["gradient_booster"]
    if not isinstance(gbtree, dict) or gbtree.get("name") != "gbtree":
        return
    count = max(0, len(ctx.trees) + delta)
    ctx.doc["learner"]["gradient_booster"] = {
        "name": "dart",
        "gbtree": gbtree,
        "weight_drop": [weight] * count,
    }


def m_cats(ctx: Ctx, key: str, value: Any) -> None:
    cats = ctx.model.get("cats")
    if isinstance(cats, dict):
        cats[key] = copy.deepcopy(value)


def m_feature_names(ctx: Ctx, op: str) -> None:
    names = ctx.doc["learner"]["feature_names"]
    if op == "reverse":
        names.reverse()
    elif op == "drop":
        names.pop()
    elif op == "duplicate":
        names[1] = names[0]
    elif op == "non-str":
        names[0] = 5


def m_version(ctx: Ctx, value: Any) -> None:
    ctx.doc["version"] = copy.deepcopy(value)


MUTATIONS: dict[str, Callable[..., None]] = {
    name[2:]: fn for name, fn in globals().items() if name.startswith("m_") and callable(fn)
}


def mutation_strategy() -> Any:
    from hypothesis import strategies as st

    idx = st.integers(0, 10_000)
    tree_idx = st.one_of(st.integers(0, 3), idx)
    index_value = st.one_of(st.sampled_from(INDEX_VALUES), st.integers(-(2**40), 2**40))
    float_value = st.one_of(
        st.sampled_from(FLOAT_VALUES), st.floats(allow_nan=True, allow_infinity=True)
    )
    small = st.sampled_from([0, 1, 2, 3, -1, 255, 256, True, 0.5, NAN, "1", None])
    category = st.one_of(
        st.sampled_from(CATEGORY_VALUES),
        st.integers(-(2**40), 2**40),
    )
    seg_value = st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 1.5])
    size_value = st.sampled_from(["len", 0, 1, -1, 2**31, 2**63 - 1, 1000])
    node_key = st.sampled_from(NODE_KEYS)
    float_key = st.sampled_from(["split_conditions", "base_weights", "loss_changes",
                                 "sum_hessian"])  # fmt: skip
    int_key = st.sampled_from(["left_children", "right_children", "parents", "split_indices",
                               "default_left", "split_type"])  # fmt: skip
    param_value = st.one_of(st.sampled_from(PARAM_VALUES), st.integers(-(2**33), 2**33))
    list_value = st.one_of(
        st.sampled_from([0, 1, -1, 2, 2**31, 1.5, NAN, "0", None]), st.integers(-5, 100)
    )
    swap_value = st.sampled_from(SWAP_VALUES)
    learner_param = st.sampled_from(sorted(LEARNER_PARAMS)).flatmap(
        lambda key: st.tuples(
            st.just("learner_param"), st.just(key), st.sampled_from(LEARNER_PARAMS[key])
        )
    )
    depth = st.one_of(st.sampled_from([1, 2, 6, 16, 63, 64, 65, 100, 12_000]), st.integers(1, 200))
    complete_depth = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16])
    weight = st.sampled_from([1.0, 0.0, 0.5, NAN, INF, -1.0, 1e308])

    return st.one_of(
        st.tuples(st.just("child"), tree_idx, idx, st.sampled_from(["left", "right"]),
                  index_value),
        st.tuples(st.just("swap_children"), tree_idx, idx, idx),
        st.tuples(st.just("parent"), tree_idx, idx, index_value),
        st.tuples(st.just("split_index"), tree_idx, idx, index_value),
        st.tuples(st.just("float"), tree_idx, float_key, idx, float_value),
        st.tuples(st.just("small"), tree_idx, st.sampled_from(["default_left", "split_type"]),
                  idx, small),
        st.tuples(st.just("categorical"), tree_idx, idx, st.lists(category, max_size=8),
                  seg_value, size_value, st.sampled_from([0, 0, 0, 1, -1, 10_000])),
        st.tuples(st.just("feature_types"),
                  st.sampled_from([["c"] * 10, ["q"] * 10, ["int"] * 10, ["float"] * 9,
                                   ["x"] * 10, [], "c", [1] * 10])),
        st.tuples(st.just("resize"), tree_idx, node_key,
                  st.sampled_from(["drop", "append", "empty", "double", "half"])),
        st.tuples(st.just("resize_all"), tree_idx, st.sampled_from([-3, -1, 1, 2, 1000])),
        st.tuples(st.just("tree_param"), tree_idx,
                  st.sampled_from(["num_nodes", "num_nodes", "size_leaf_vector",
                                   "num_feature", "num_deleted"]), param_value),
        st.tuples(st.just("num_trees"), param_value),
        st.tuples(st.just("list_field"), st.sampled_from(["tree_info", "iteration_indptr"]),
                  st.sampled_from(["set", "set", "drop", "append", "reverse", "empty"]),
                  idx, list_value),
        st.tuples(st.just("delete"), st.sampled_from(PATHS), tree_idx, idx),
        st.tuples(st.just("delete_tree_key"), tree_idx, st.sampled_from(TREE_KEYS)),
        st.tuples(st.just("type_swap"), st.sampled_from(PATHS), tree_idx, idx, swap_value),
        st.tuples(st.just("tree_key_swap"), tree_idx, st.sampled_from(TREE_KEYS), swap_value),
        st.tuples(st.just("int_as_float"), tree_idx, int_key, st.booleans()),
        st.tuples(st.just("retype"), tree_idx, node_key, st.sampled_from(sorted(UBJ_DTYPES))),
        st.tuples(st.just("duplicate"), tree_idx, st.sampled_from(TREE_KEYS),
                  index_value, st.booleans()),
        st.tuples(st.just("replace_tree"), tree_idx, st.just("chain"), depth),
        st.tuples(st.just("replace_tree"), tree_idx, st.just("complete"), complete_depth),
        st.tuples(st.just("trees"), st.sampled_from(["add", "remove"]),
                  st.sampled_from([1, 2, 3, 5, 10, 20, 30, 50, 100, 500, 3000, 10_000]),
                  st.booleans()),
        learner_param,
        st.tuples(st.just("objective"), st.sampled_from(OBJECTIVES)),
        st.tuples(st.just("dart"), st.sampled_from([0, 0, -1, -10, 1]), weight),
        st.tuples(st.just("cats"), st.sampled_from(["enc", "feature_segments", "sorted_idx"]),
                  st.sampled_from([[0, 5], [-1], [2**31 - 1], [0] * 11, [{"a": 1}], ["x"],
                                   {}, None, [[0, 1]]])),
        st.tuples(st.just("feature_names"),
                  st.sampled_from(["reverse", "drop", "duplicate", "non-str"])),
        st.tuples(st.just("version"), st.sampled_from([[1, 0, 0], [99, 0, 0], [3, 2], [], "x",
                                                       [3, 2, 0, 0], None])),
    )  # fmt: skip


def plan_strategy() -> Any:
    from hypothesis import strategies as st

    byte_mutation = st.one_of(
        st.none(),
        st.none(),
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
        st.tuples(st.just("count"), st.integers(0, 10_000), st.sampled_from(COUNT_VALUES)),
    )
    return st.fixed_dictionaries(
        {
            "format": st.sampled_from(["json", "ubj"]),
            "mutations": st.lists(mutation_strategy(), min_size=1, max_size=4),
            "bytes": byte_mutation,
        }
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def mutate_bytes(raw: bytes, fmt: str, spec: Any) -> bytes:
    if spec is None:
        return raw
    kind, *args = spec
    if kind == "truncate":
        return raw[: int(args[0] * len(raw))]
    if kind == "flip":
        pos = min(len(raw) - 1, int(args[0] * len(raw)))
        return raw[:pos] + bytes([args[1]]) + raw[pos + 1 :]
    # "count": a typed array's or string's 8-byte length (UBJSON) or a number (JSON).
    if fmt == "ubj":
        sites = [m.start() + 2 for m in re.finditer(rb"#L", raw)] or [
            m.start() + 1 for m in re.finditer(rb"L\x00\x00\x00", raw)
        ]
        if not sites:
            return raw
        at = sites[args[0] % len(sites)]
        return raw[:at] + struct.pack(">q", args[1]) + raw[at + 8 :]
    numbers = list(re.finditer(rb"-?\d+", raw))
    if not numbers:
        return raw
    hit = numbers[args[0] % len(numbers)]
    return raw[: hit.start()] + str(args[1]).encode() + raw[hit.end() :]


def build(seed: Seed, plan: Plan) -> tuple[bytes, list[str]]:
    """The artifact bytes of a plan, and the mutations that could not apply."""
    ctx = Ctx(copy.deepcopy(seed.doc))
    skipped = []
    for mutation in plan["mutations"]:
        try:
            apply(ctx, list(mutation))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, ZeroDivisionError):
            skipped.append(mutation[0])  # an earlier mutation removed what this one needs
    raw = to_json(ctx.doc) if plan["format"] == "json" else to_ubj(ctx.doc)
    return mutate_bytes(raw, plan["format"], plan["bytes"]), skipped


# --------------------------------------------------------------------------- harness


def _status_rss_kb(field_name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def _vm_size() -> int:
    return _status_rss_kb("VmSize") * 1024


def child_body(raw: bytes, names: list[str], rows: np.ndarray) -> dict[str, Any]:
    """What the forked child runs; returns the outcome (see the module docstring)."""
    import xgboost as xgb

    from explain.shap_core import Explainer
    from registry.training import ArtifactFormatError, artifact_format, load_booster
    from registry.tree_check import ArtifactStructureError, check_artifact

    stage = "format"
    try:
        fmt = artifact_format(raw)
        stage = "tree_check"
        check_artifact(raw, fmt)
    except ArtifactFormatError as exc:
        return {"outcome": "refused", "by": "format", "reason": str(exc)}
    except ArtifactStructureError as exc:
        return {"outcome": "refused", "by": "tree_check", "reason": exc.details["reason"]}
    except MemoryError:
        return {"outcome": "crash", "kind": "memory", "stage": stage}
    except BaseException as exc:  # noqa: BLE001 - tree_check must only raise its own error
        return {"outcome": "crash", "kind": "exception", "stage": stage,
                "error": f"{type(exc).__name__}: {str(exc)[:300]}"}  # fmt: skip
    stage = "load_booster"
    try:
        booster = load_booster(raw, feature_names=names)
    except ArtifactFormatError as exc:
        message = str(exc)
        by = "xgboost" if "XGBoost rejected" in message else "feature_names"
        if "bad_alloc" in message or "memory" in message.lower():
            return {"outcome": "crash", "kind": "memory", "stage": stage, "error": message}
        return {"outcome": "refused", "by": by, "reason": message}
    except MemoryError:
        return {"outcome": "crash", "kind": "memory", "stage": stage}
    except BaseException as exc:  # noqa: BLE001
        return {"outcome": "crash", "kind": "exception", "stage": stage,
                "error": f"{type(exc).__name__}: {str(exc)[:300]}"}  # fmt: skip
    try:
        stage = "predict"
        scores = booster.predict(xgb.DMatrix(rows, feature_names=names))
        stage = "explain"
        explainer = Explainer(booster, names)
        small = explainer.explain(rows[:6])
        big = explainer.explain(rows)
    except MemoryError:
        return {"outcome": "crash", "kind": "memory", "stage": stage}
    except BaseException as exc:  # noqa: BLE001
        return {"outcome": "crash", "kind": "exception", "stage": stage,
                "error": f"{type(exc).__name__}: {str(exc)[:300]}"}  # fmt: skip
    finite = bool(np.all(np.isfinite(scores)) and np.all(np.isfinite(big.values)))
    return {"outcome": "accepted", "finite": finite, "rows": len(small) + len(big)}


def run_child(
    raw: bytes, names: list[str], rows: np.ndarray, *, limit: int, timeout: float, log: Path
) -> dict[str, Any]:
    """Fork, run child_body under the limits, collect its outcome and peak RSS."""
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            base = _status_rss_kb("VmRSS") * 1024
            address = _vm_size() + limit
            resource.setrlimit(resource.RLIMIT_AS, (address, address))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            err = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(err, 2)
            os.dup2(err, 1)
            faulthandler.enable(file=sys.stderr, all_threads=True)
            outcome = child_body(raw, names, rows)
            outcome["base_rss"] = base
            outcome["peak_rss"] = _status_rss_kb("VmHWM") * 1024
            os.write(write_fd, json.dumps(_jsonable(outcome)).encode())
        except BaseException:  # noqa: BLE001 - never return into the parent's code
            code = 70
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    timed_out = False
    deadline = started + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([read_fd], [], [], left)
        if ready:
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    os.close(read_fd)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - started
    result: dict[str, Any]
    if timed_out:
        result = {"outcome": "crash", "kind": "timeout"}
    elif os.WIFSIGNALED(status):
        result = {"outcome": "crash", "kind": "signal",
                  "signal": signal.Signals(os.WTERMSIG(status)).name}  # fmt: skip
    elif chunks:
        result = json.loads(b"".join(chunks))
    else:
        result = {"outcome": "crash", "kind": "died", "exit": os.WEXITSTATUS(status)}
    if result["outcome"] == "crash":
        result["stderr"] = log.read_text(errors="replace")[-2000:]
    result.setdefault("peak_rss", usage.ru_maxrss * 1024)
    result["wall_s"] = round(wall, 3)
    return result


def reason_key(result: dict[str, Any]) -> str:
    """A refusal's reason with the numbers and quoted names taken out, for counting."""
    reason = str(result.get("reason", ""))
    reason = re.sub(r"XGBoost model refused: (tree \d+(, node \d+)?: )?", "", reason)
    reason = re.sub(r"\[\d\d:\d\d:\d\d\] \S+: ", "", reason)
    reason = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    reason = re.sub(r"-?\d+(\.\d+)?(e[+-]?\d+)?", "N", reason)
    return f"{result['by']}: {reason[:90]}"


@dataclass
class Tally:
    examples: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    over_bound: list[dict[str, Any]] = field(default_factory=list)
    nonfinite: int = 0
    max_growth: int = 0
    max_ratio: float = 0.0
    max_ratio_size: int = 0
    max_size: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def fuzz(args: argparse.Namespace) -> int:
    configure()
    import hypothesis
    from hypothesis import HealthCheck, Phase, given, settings

    # Loaded (not run) before forking, so each child starts with them in memory.
    import explain.shap_core  # noqa: F401
    import registry.training  # noqa: F401

    started = time.monotonic()
    seed = seed_model(args.rounds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    crash_dir = Path(f"{args.out}.d")
    crash_dir.mkdir(exist_ok=True)
    log = crash_dir / "child-stderr.txt"
    limit = int(args.memory_limit * (1 << 20))
    floor = int(args.bound_floor * (1 << 20))
    tally = Tally()
    stream = out.open("w")

    def record(plan: Plan, raw: bytes, skipped: list[str]) -> dict[str, Any]:
        result = run_child(raw, seed.names, seed.rows, limit=limit, timeout=args.timeout, log=log)
        growth = max(0, int(result["peak_rss"]) - int(result.get("base_rss", 0)))
        bound = args.bound_factor * len(raw) + floor
        result.update(size=len(raw), growth=growth, ratio=round(growth / max(1, len(raw)), 3))
        tally.examples += 1
        tally.skipped.update(skipped)
        tally.outcomes[result["outcome"]] += 1
        tally.max_size = max(tally.max_size, len(raw))
        if result["outcome"] == "refused":
            tally.refusals[reason_key(result)] += 1
        if result["outcome"] == "accepted" and not result["finite"]:
            tally.nonfinite += 1
        if growth > tally.max_growth:
            tally.max_growth = growth
        if result["ratio"] > tally.max_ratio and len(raw) >= 1 << 20:
            tally.max_ratio, tally.max_ratio_size = result["ratio"], len(raw)
        over = "base_rss" in result and growth > bound  # measured by a child that reported
        if result["outcome"] == "crash" or over:
            name = f"{'crash' if result['outcome'] == 'crash' else 'memory'}-{tally.examples:05d}"
            suffix = ".json" if plan["format"] == "json" else ".ubj"
            (crash_dir / f"{name}{suffix}").write_bytes(raw)
            (crash_dir / f"{name}.plan.json").write_text(json.dumps(_jsonable(plan), indent=1))
            result["artifact"] = str(crash_dir / f"{name}{suffix}")
            if result["outcome"] == "crash":
                tally.crashes.append(result)
            if over:
                tally.over_bound.append(result)
        stream.write(json.dumps(_jsonable({"plan": plan, "skipped": skipped, **result})) + "\n")
        stream.flush()
        return result

    baselines = {}
    for fmt, raw in (("json", seed.json_bytes), ("ubj", seed.ubj_bytes)):
        baselines[fmt] = record({"format": fmt, "mutations": [], "bytes": None}, raw, [])
        assert baselines[fmt]["outcome"] == "accepted", baselines[fmt]

    stop_at = started + args.max_seconds if args.max_seconds else None

    @hypothesis.seed(args.seed)
    @settings(
        max_examples=args.examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(plan_strategy())
    def one(plan: Plan) -> None:
        if stop_at is not None and time.monotonic() > stop_at:
            return
        raw, skipped = build(seed, plan)
        record(plan, raw, skipped)
        if args.progress and tally.examples % args.progress == 0:
            print(f"  {tally.examples} examples, {dict(tally.outcomes)}", flush=True)

    one()
    stream.close()
    wall = time.monotonic() - started
    print(summary(tally, seed, baselines, wall, args))
    return 1 if tally.crashes or tally.over_bound else 0


def summary(
    tally: Tally, seed: Seed, baselines: dict[str, Any], wall: float, args: argparse.Namespace
) -> str:
    lines = [
        f"seed model: {len(seed.doc['learner']['gradient_booster']['model']['trees'])} trees; "
        f"JSON {len(seed.json_bytes):,} bytes, UBJSON {len(seed.ubj_bytes):,} bytes; "
        f"baseline growth JSON {baselines['json']['growth'] / 2**20:.1f} MiB, "
        f"UBJSON {baselines['ubj']['growth'] / 2**20:.1f} MiB",
        f"examples: {tally.examples} (2 baselines + {tally.examples - 2} generated, "
        f"seed {args.seed}) in {wall:.0f} s",
        f"accepted: {tally.outcomes['accepted']} ({tally.nonfinite} with non-finite scores)",
        f"refused:  {tally.outcomes['refused']}",
    ]
    by = Counter(key.split(":")[0] for key in tally.refusals.elements())
    lines += [f"  by {k}: {v}" for k, v in by.most_common()]
    lines += [f"    {v:5d}  {k}" for k, v in tally.refusals.most_common(args.reasons)]
    if len(tally.refusals) > args.reasons:
        lines.append(f"    ... {len(tally.refusals) - args.reasons} more reasons")
    lines.append(f"crashes: {len(tally.crashes)}")
    for crash in tally.crashes[:20]:
        what = str(crash.get("error") or crash.get("signal") or crash.get("kind"))
        what = what.splitlines()[0][:160]
        lines.append(f"  {crash['kind']} at {crash.get('stage', '?')}: {what}  {crash['artifact']}")
    bound = f"{args.bound_factor:g} x size + {args.bound_floor:g} MiB"
    lines += [
        f"over the memory bound ({bound}): {len(tally.over_bound)}",
        *(
            f"  {r['growth'] / 2**20:.0f} MiB for {r['size']:,} bytes: {r['artifact']}"
            for r in tally.over_bound[:10]
        ),
        f"largest artifact {tally.max_size / 2**20:.1f} MiB; max peak RSS growth "
        f"{tally.max_growth / 2**20:.1f} MiB; max growth/size {tally.max_ratio:.1f}x "
        f"(artifacts >= 1 MiB; at {tally.max_ratio_size:,} bytes)",
    ]
    if tally.skipped:
        lines.append(f"mutations skipped (target already removed): {sum(tally.skipped.values())}")
    return "\n".join(lines)


def replay(args: argparse.Namespace) -> int:
    configure()
    import explain.shap_core  # noqa: F401
    import registry.training  # noqa: F401

    seed = seed_model(args.rounds)
    raw = Path(args.replay).read_bytes()
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        result = run_child(
            raw, seed.names, seed.rows, limit=int(args.memory_limit * (1 << 20)),
            timeout=args.timeout, log=Path(log.name),
        )  # fmt: skip
    print(json.dumps(result, indent=1))
    return 1 if result["outcome"] == "crash" else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="generated artifacts")
    parser.add_argument("--seed", type=int, default=1, help="hypothesis seed")
    parser.add_argument("--out", default="var/fuzz/artifacts.jsonl", help="JSON lines output")
    parser.add_argument("--rounds", type=int, default=12, help="boosting rounds of the seed")
    parser.add_argument("--memory-limit", type=float, default=1536, help="MiB above fork")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per artifact")
    parser.add_argument("--bound-factor", type=float, default=10.0)
    parser.add_argument("--bound-floor", type=float, default=64.0, help="MiB")
    parser.add_argument("--max-seconds", type=float, default=0, help="stop generating after")
    parser.add_argument("--progress", type=int, default=0, help="print every N examples")
    parser.add_argument("--reasons", type=int, default=25, help="refusal reasons listed")
    parser.add_argument("--replay", default="", help="run one artifact file and print")
    parser.add_argument("--_train", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._train:
        train_into(Path(args._train), args.rounds)
        return 0
    return replay(args) if args.replay else fuzz(args)


if __name__ == "__main__":
    sys.exit(main())
