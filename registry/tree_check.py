"""Structural checks of an XGBoost model before XGBoost itself is allowed to load it.

XGBoost trusts the tree arrays of a model file: a child index past the end, or one
pointing back at an ancestor, makes prediction read out of bounds or loop until the
stack overflows (SIGSEGV in the web or Celery worker); a 12,000-deep chain makes
TreeSHAP need gigabytes per row. ``check_model`` parses the JSON or UBJSON bytes with
bounded memory and checks every tree of ``learner.gradient_booster`` (``gbtree``, or
the ``gbtree`` inside ``dart``):

- ``tree_param.num_nodes`` within 1..``MAX_TREE_NODES``, and every per-node array
  (children, parents, split indices and conditions, default directions, weights,
  statistics, split types) exactly that long;
- children: ``-1`` on both sides (a leaf) or two indices in ``1..num_nodes-1``, each
  node the child of exactly one parent, ``parents`` consistent, every node reachable
  from the root once (so no cycle), depth at most ``MAX_TREE_DEPTH``;
- split feature indices below ``num_feature`` (at most ``MAX_FEATURES``), split
  conditions, leaf values and statistics finite, split types 0 or 1 with categorical
  splits backed by in-range category segments;
- at most ``MAX_TREES`` trees and ``MAX_TOTAL_NODES`` nodes, ``tree_info`` and
  ``iteration_indptr`` consistent with them: each tree's ``id`` is its position, each
  ``tree_info`` group is below the output-group count, every iteration adds one tree
  per group; single-target models with at most ``MAX_CLASSES`` classes and a finite
  ``base_score``; a dart model holds one finite ``weight_drop`` per tree (each of these
  was a native crash or a huge allocation in XGBoost, found by bench/fuzz_artifacts.py).

Why these limits: depthwise trees are grown with ``max_depth`` 6 here and rarely
beyond 20 anywhere; 64 leaves room for loss-guided trees while keeping TreeSHAP's
per-row path state (O(depth²)) negligible. 2^17 nodes is a complete tree of depth 16;
10,000 trees is thirty times the default boosting rounds; 2 million nodes bound the
memory of a loaded booster and its explainer to tens of MB.

Memory: UBJSON typed arrays are read as NumPy views of the buffer (no copy). JSON is
pre-scanned byte-wise: more than ``MAX_JSON_CONTAINERS`` arrays and objects is refused
before parsing (a file of empty lists costs ~60 bytes of Python objects per 3 bytes);
numeric lists are turned into NumPy arrays as each object closes. Parsing peaks at
about 10× the size of the file (a Python float per 4-byte ``0.0,``), usually ~3×.

Django-free: raises ``ArtifactStructureError`` (a ``ValueError``) whose ``details``
name the tree, the node and the reason; ``registry.training.load_booster`` turns it
into a 400.
"""

from __future__ import annotations

import json
import math
from collections import deque
from typing import Any

import numpy as np

MAX_TREE_DEPTH = 64
MAX_TREE_NODES = 1 << 17
MAX_TREES = 10_000
MAX_TOTAL_NODES = 2_000_000
MAX_FEATURES = 100_000
MAX_CLASSES = 1_000
MAX_JSON_CONTAINERS = 40 * MAX_TREES + 10_000
MAX_NESTING = 64

NODE_ARRAYS = (
    "left_children",
    "right_children",
    "parents",
    "split_indices",
    "split_conditions",
    "default_left",
    "base_weights",
    "loss_changes",
    "sum_hessian",
)
FLOAT_ARRAYS = ("split_conditions", "base_weights", "loss_changes", "sum_hessian")


class ArtifactStructureError(ValueError):
    """The model's structure is unsafe to load; ``details`` say where and why."""

    def __init__(self, reason: str, *, tree: int | None = None, node: int | None = None):
        where = "" if tree is None else f"tree {tree}" + ("" if node is None else f", node {node}")
        super().__init__(f"XGBoost model refused: {where + ': ' if where else ''}{reason}")
        self.details: dict[str, Any] = {"field": "artifact", "reason": reason}
        if tree is not None:
            self.details["tree"] = tree
        if node is not None:
            self.details["node"] = node


# --------------------------------------------------------------------------- parsing


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Numeric lists become arrays as soon as their object closes: a tree's Python
    # floats live only while that tree is being parsed.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if isinstance(value, list) and value and not isinstance(value[0], (dict, list, str)):
            try:
                value = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                pass
        out[key] = value
    return out


def parse_json(raw: bytes | bytearray) -> dict[str, Any]:
    """The model JSON as dicts with NumPy arrays for numeric lists, memory bounded."""
    view = np.frombuffer(raw, dtype=np.uint8)
    containers = int(np.count_nonzero(view == ord("["))) + int(np.count_nonzero(view == ord("{")))
    if containers > MAX_JSON_CONTAINERS:
        raise ArtifactStructureError(
            f"JSON artifact has {containers} arrays and objects, more than a model of "
            f"{MAX_TREES} trees can have ({MAX_JSON_CONTAINERS})"
        )
    try:
        doc = json.loads(raw, object_pairs_hook=_json_pairs)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactStructureError(f"artifact is not valid JSON (truncated?): {exc}") from None
    except RecursionError:
        raise ArtifactStructureError("artifact JSON is nested too deeply") from None
    if not isinstance(doc, dict):
        raise ArtifactStructureError("artifact JSON is not an object")
    return doc


_UBJ_INTS = {ord("i"): ">i1", ord("U"): ">u1", ord("I"): ">i2", ord("l"): ">i4", ord("L"): ">i8"}
_UBJ_NUMBERS = {**_UBJ_INTS, ord("d"): ">f4", ord("D"): ">f8"}


class _UBJReader:
    """A bounded UBJSON decoder: typed numeric arrays come back as NumPy views."""

    def __init__(self, raw: bytes | bytearray):
        self.buf = memoryview(raw)
        self.pos = 0
        self.containers = 0

    def take(self, size: int) -> memoryview:
        if size < 0 or self.pos + size > len(self.buf):
            raise ArtifactStructureError("UBJSON artifact is truncated or corrupt")
        chunk = self.buf[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def marker(self) -> int:
        return self.take(1)[0]

    def number(self, marker: int) -> int | float:
        dtype = np.dtype(_UBJ_NUMBERS[marker])
        value = np.frombuffer(self.take(dtype.itemsize), dtype=dtype)[0]
        return float(value) if dtype.kind == "f" else int(value)

    def length(self) -> int:
        marker = self.marker()
        if marker not in _UBJ_INTS:
            raise ArtifactStructureError("UBJSON artifact has a malformed length")
        value = self.number(marker)
        if value < 0:
            raise ArtifactStructureError("UBJSON artifact has a negative length")
        return int(value)

    def text(self) -> str:
        return bytes(self.take(self.length())).decode("utf-8", "replace")

    def value(self, marker: int, depth: int) -> Any:
        if marker in _UBJ_NUMBERS:
            return self.number(marker)
        if marker in (ord("S"), ord("H")):
            return self.text()
        if marker == ord("C"):
            return chr(self.take(1)[0])
        if marker in (ord("Z"), ord("N")):
            return None
        if marker in (ord("T"), ord("F")):
            return marker == ord("T")
        if marker in (ord("["), ord("{")):
            return self.container(marker == ord("{"), depth + 1)
        raise ArtifactStructureError(f"UBJSON artifact has an unknown marker {marker!r}")

    def container(self, is_object: bool, depth: int) -> Any:
        self.containers += 1
        if depth > MAX_NESTING or self.containers > MAX_JSON_CONTAINERS:
            raise ArtifactStructureError("UBJSON artifact is nested too deeply or too large")
        elem_type = count = None
        head = self.marker()
        if head == ord("$"):
            elem_type, head = self.marker(), self.marker()
            if head != ord("#"):
                raise ArtifactStructureError("UBJSON typed container without a count")
        if head == ord("#"):
            count = self.length()
        else:
            self.pos -= 1
        if count is not None and not is_object and elem_type in _UBJ_NUMBERS:
            dtype = np.dtype(_UBJ_NUMBERS[elem_type])
            return np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype)
        return self._members(is_object, depth, elem_type, count)

    def _members(self, is_object, depth, elem_type, count) -> Any:
        out: Any = {} if is_object else []
        end = ord("}") if is_object else ord("]")
        index = 0
        while count is None or index < count:
            index += 1
            if count is None:
                if self.marker() == end:
                    break
                self.pos -= 1
            key = self.text() if is_object else None
            item = self.value(self.marker() if elem_type is None else elem_type, depth)
            if is_object:
                out[key] = item
            else:
                out.append(item)
        if not is_object and out and all(isinstance(v, (int, float)) for v in out):
            return np.asarray(out, dtype=np.float64)
        return out


def parse_ubjson(raw: bytes | bytearray) -> dict[str, Any]:
    reader = _UBJReader(raw)
    if reader.marker() != ord("{"):
        raise ArtifactStructureError("UBJSON artifact is not an object")
    doc = reader.container(True, 1)
    if reader.pos != len(reader.buf):
        raise ArtifactStructureError("UBJSON artifact has trailing bytes")
    return doc


# --------------------------------------------------------------------------- checks


def _int_param(params: Any, key: str, where: str, *, tree: int | None = None) -> int:
    value = params.get(key) if isinstance(params, dict) else None
    try:
        return int(str(value))
    except ValueError:
        raise ArtifactStructureError(
            f"{where}.{key} is missing or not an integer", tree=tree
        ) from None


def _array(tree: dict, key: str, n: int, index: int) -> np.ndarray:
    value = tree.get(key)
    if isinstance(value, list) and not value:
        value = np.zeros(0)
    if not isinstance(value, np.ndarray) or value.ndim != 1:
        raise ArtifactStructureError(f"{key} is missing or not a numeric array", tree=index)
    if len(value) != n:
        raise ArtifactStructureError(f"{key} has {len(value)} entries for {n} nodes", tree=index)
    return value


def _as_index(values: np.ndarray, key: str, index: int) -> np.ndarray:
    as_float = values.astype(np.float64)
    whole = np.isfinite(as_float) & (as_float == np.round(as_float)) & (np.abs(as_float) < 2**32)
    if not np.all(whole):
        raise ArtifactStructureError(f"{key} holds non-integer values", tree=index)
    return as_float.astype(np.int64)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_children(left: np.ndarray, right: np.ndarray, parents: np.ndarray, index: int):
    n = len(left)
    leaf = left == -1
    if np.any(leaf != (right == -1)):
        raise ArtifactStructureError(
            "a node has exactly one child", tree=index, node=_first(leaf != (right == -1))
        )
    for side, children in (("left", left), ("right", right)):
        bad = ~leaf & ((children < 1) | (children >= n))
        if np.any(bad):
            node = _first(bad)
            raise ArtifactStructureError(
                f"{side} child {int(children[node])} is out of range 1..{n - 1}",
                tree=index,
                node=node,
            )
    edges = np.concatenate([left[~leaf], right[~leaf]])
    incoming = np.bincount(edges, minlength=n)
    if np.any(incoming > 1):
        node = _first(incoming > 1)
        raise ArtifactStructureError(
            "node is the child of more than one node", tree=index, node=node
        )
    owners = np.flatnonzero(~leaf)
    if np.any(parents[left[owners]] != owners) or np.any(parents[right[owners]] != owners):
        wrong = np.concatenate([left[owners][parents[left[owners]] != owners],
                                right[owners][parents[right[owners]] != owners]])  # fmt: skip
        raise ArtifactStructureError(
            "parents disagrees with the children", tree=index, node=int(wrong[0])
        )
    _check_reachable(left, right, index)


def _check_reachable(left: np.ndarray, right: np.ndarray, index: int) -> None:
    """Breadth-first from the root: every node once, depth bounded (no recursion)."""
    n = len(left)
    depth = np.full(n, -1, dtype=np.int64)
    depth[0] = 0
    queue = deque([0])
    while queue:
        node = queue.popleft()
        if left[node] == -1:
            continue
        for child in (int(left[node]), int(right[node])):
            if depth[child] != -1:
                raise ArtifactStructureError(
                    "a cycle leads back to this node", tree=index, node=child
                )
            depth[child] = depth[node] + 1
            if depth[child] > MAX_TREE_DEPTH:
                raise ArtifactStructureError(
                    f"tree is deeper than {MAX_TREE_DEPTH} levels", tree=index, node=child
                )
            queue.append(child)
    if np.any(depth == -1):
        raise ArtifactStructureError(
            "node is not reachable from the root", tree=index, node=_first(depth == -1)
        )


def _check_values(tree: dict, n: int, num_feature: int, leaf: np.ndarray, index: int) -> None:
    for key in FLOAT_ARRAYS:
        values = _array(tree, key, n, index).astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise ArtifactStructureError(
                f"{key} is not finite", tree=index, node=_first(~np.isfinite(values))
            )
    split = _as_index(_array(tree, "split_indices", n, index), "split_indices", index)
    bad = ~leaf & ((split < 0) | (split >= num_feature))
    if np.any(bad):
        node = _first(bad)
        raise ArtifactStructureError(
            f"split feature {int(split[node])} is not below the {num_feature} features",
            tree=index,
            node=node,
        )
    default_left = _array(tree, "default_left", n, index)
    if not np.all(np.isin(default_left, (0, 1))):
        raise ArtifactStructureError("default_left is not 0 or 1", tree=index)
    _check_categories(tree, n, leaf, index)


def _check_categories(tree: dict, n: int, leaf: np.ndarray, index: int) -> None:
    split_type = tree.get("split_type")
    if split_type is None:
        return
    kinds = _as_index(_array(tree, "split_type", n, index), "split_type", index)
    if not np.all(np.isin(kinds, (0, 1))):
        raise ArtifactStructureError(
            "split_type is not 0 or 1", tree=index, node=_first(~np.isin(kinds, (0, 1)))
        )
    categories = tree.get("categories")
    size = len(categories) if isinstance(categories, (list, np.ndarray)) else 0
    arrays = []
    for key in ("categories_nodes", "categories_segments", "categories_sizes"):
        value = tree.get(key, [])
        value = np.zeros(0) if isinstance(value, list) and not value else value
        if not isinstance(value, np.ndarray):
            raise ArtifactStructureError(f"{key} is not a numeric array", tree=index)
        arrays.append(_as_index(value, key, index))
    nodes, segments, sizes = arrays
    if not len(nodes) == len(segments) == len(sizes):
        raise ArtifactStructureError("category arrays differ in length", tree=index)
    if (
        np.any((nodes < 0) | (nodes >= n))
        or np.any(segments < 0)
        or np.any(sizes < 0)
        or np.any(segments + sizes > size)
    ):
        raise ArtifactStructureError("category segments are out of range", tree=index)
    categorical = np.flatnonzero((kinds == 1) & ~leaf)
    missing = np.setdiff1d(categorical, nodes)
    if missing.size:
        raise ArtifactStructureError(
            "categorical split without categories", tree=index, node=int(missing[0])
        )


def check_tree(tree: Any, index: int, num_feature: int) -> int:
    """Check one tree (see the module docstring); returns its node count."""
    if not isinstance(tree, dict):
        raise ArtifactStructureError("tree is not an object", tree=index)
    params = tree.get("tree_param")
    n = _int_param(params, "num_nodes", "tree_param", tree=index)
    if not 1 <= n <= MAX_TREE_NODES:
        raise ArtifactStructureError(f"{n} nodes is outside 1..{MAX_TREE_NODES}", tree=index)
    if _int_param(params, "size_leaf_vector", "tree_param", tree=index) > 1:
        raise ArtifactStructureError(
            "multi-target (vector leaf) trees are not supported", tree=index
        )
    for key in NODE_ARRAYS:
        _array(tree, key, n, index)
    left = _as_index(tree["left_children"], "left_children", index)
    right = _as_index(tree["right_children"], "right_children", index)
    parents = _as_index(tree["parents"], "parents", index)
    _check_children(left, right, parents, index)
    _check_values(tree, n, num_feature, left == -1, index)
    return n


def _trees_model(learner: dict) -> dict:
    booster = learner.get("gradient_booster")
    if not isinstance(booster, dict):
        raise ArtifactStructureError("learner.gradient_booster is missing")
    name = booster.get("name")
    if name == "dart":
        booster = booster.get("gbtree")
        name = booster.get("name") if isinstance(booster, dict) else None
    if (
        name != "gbtree"
        or not isinstance(booster, dict)
        or not isinstance(booster.get("model"), dict)
    ):
        raise ArtifactStructureError(f"only gbtree and dart boosters are supported, not {name!r}")
    return booster["model"]


def _output_groups(learner: dict) -> int:
    """How many outputs the trees are grouped by (1, or the class count), after checking
    the learner parameters XGBoost sizes buffers and reads scores with."""
    params = learner.get("learner_model_param")
    params = params if isinstance(params, dict) else {}
    # XGBoost writes both; absent, they take XGBoost's defaults.
    num_class = _int_param(
        {"num_class": params.get("num_class", "0")}, "num_class", "learner_model_param"
    )
    num_target = _int_param(
        {"num_target": params.get("num_target", "1")}, "num_target", "learner_model_param"
    )
    if num_target != 1:
        raise ArtifactStructureError(f"num_target {num_target}: only single-target models")
    if not 0 <= num_class <= MAX_CLASSES:
        raise ArtifactStructureError(f"num_class {num_class} is outside 0..{MAX_CLASSES}")
    if "base_score" not in params:
        return max(num_class, 1)
    base = params["base_score"]
    try:
        values = [float(v) for v in str(base).strip("[]").split(",")]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) for v in values):
        raise ArtifactStructureError(f"base_score {str(base)[:40]!r} is not a finite number")
    return max(num_class, 1)


def _check_layout(model: dict, count: int, groups: int) -> None:
    declared = _int_param(model.get("gbtree_model_param"), "num_trees", "gbtree_model_param")
    if declared != count:
        raise ArtifactStructureError(f"num_trees says {declared}, the model holds {count} trees")
    info = model.get("tree_info", [])
    if not isinstance(info, (list, np.ndarray)) or len(info) != count:
        raise ArtifactStructureError(f"tree_info has {len(info)} entries for {count} trees")
    try:  # the parser hands numeric lists over as NumPy arrays (floats from JSON)
        values = np.asarray(info, dtype=np.float64)
    except (TypeError, ValueError):
        raise ArtifactStructureError("tree_info must list integers") from None
    bad = ~((values >= 0) & (values < groups) & (values == np.floor(values)))
    if bad.any():
        index = int(np.argmax(bad))
        raise ArtifactStructureError(
            f"tree_info puts the tree in output group {info[index]!r}, not one of 0..{groups - 1}",
            tree=index,
        )
    indptr = model.get("iteration_indptr")
    if isinstance(indptr, (list, np.ndarray)) and len(indptr):
        steps = np.asarray(indptr, dtype=np.float64)
        # One iteration adds one tree per output group (no parallel forests, no vector
        # leaves): anything else is read by XGBoost and SHAP as another model kind.
        if steps[0] != 0 or steps[-1] != count or np.any(np.diff(steps) != groups):
            raise ArtifactStructureError(
                f"iteration_indptr does not step by {groups} tree(s) through the trees"
            )


def _check_tree_ids(trees: list, count: int) -> None:
    # XGBoost places each tree at its "id": a repeated or out-of-range id leaves a slot
    # empty and crashes prediction.
    for index, tree in enumerate(trees):
        if isinstance(tree, dict) and "id" in tree and tree["id"] != index:
            raise ArtifactStructureError(f"tree id {tree['id']!r} is not its position", tree=index)


def _check_dart(learner: dict, count: int) -> None:
    booster = learner.get("gradient_booster")
    if not isinstance(booster, dict) or booster.get("name") != "dart":
        return
    weights = booster.get("weight_drop")
    if not isinstance(weights, (list, np.ndarray)) or len(weights) != count:
        raise ArtifactStructureError(f"dart weight_drop must hold one weight per tree ({count})")
    values = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ArtifactStructureError("dart weight_drop holds a non-finite weight")


def check_model(doc: Any) -> dict[str, Any]:
    """Check a parsed model; returns ``{"num_feature", "feature_names", "trees", "nodes"}``."""
    learner = doc.get("learner") if isinstance(doc, dict) else None
    if not isinstance(learner, dict):
        raise ArtifactStructureError("artifact is JSON/UBJSON but not an XGBoost model")
    num_feature = _int_param(
        learner.get("learner_model_param"), "num_feature", "learner_model_param"
    )
    if not 1 <= num_feature <= MAX_FEATURES:
        raise ArtifactStructureError(f"num_feature {num_feature} is outside 1..{MAX_FEATURES}")
    names = learner.get("feature_names") or []
    if (
        not isinstance(names, list)
        or names
        and (len(names) != num_feature or not all(isinstance(s, str) for s in names))
    ):
        raise ArtifactStructureError(f"feature_names does not list {num_feature} names")
    model = _trees_model(learner)
    trees = model.get("trees")
    if not isinstance(trees, list) or not 1 <= len(trees) <= MAX_TREES:
        raise ArtifactStructureError(f"the model must hold 1..{MAX_TREES} trees")
    _check_layout(model, len(trees), _output_groups(learner))
    _check_dart(learner, len(trees))
    total = 0
    for index, tree in enumerate(trees):
        total += check_tree(tree, index, num_feature)
        if total > MAX_TOTAL_NODES:
            raise ArtifactStructureError(
                f"the trees hold more than {MAX_TOTAL_NODES} nodes", tree=index
            )
    _check_tree_ids(trees, len(trees))
    return {
        "num_feature": num_feature,
        "feature_names": list(names),
        "trees": len(trees),
        "nodes": total,
    }


def check_artifact(raw: bytes | bytearray, fmt: str) -> dict[str, Any]:
    """Parse (``fmt`` is ``"json"`` or ``"ubj"``) and check; see ``check_model``."""
    return check_model(parse_json(raw) if fmt == "json" else parse_ubjson(raw))
