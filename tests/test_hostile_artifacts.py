"""Hostile model artifacts and evaluation sets (docs/faults.md, "Hostile artifacts").

The crafted inputs are generated here from the seeded booster: trees whose children
point out of range or back at the root (XGBoost segfaults predicting with them), a
12,000-deep chain, non-finite leaves, boosters without feature names, a 2 MB `.npz`
declaring a 23M x 11 array, a 30 MB JSON of empty lists. Each must be refused with a
4xx naming what is wrong, through the API, and loading them must stay within a small
multiple of their size.
"""

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.test_hostile_input import _register, assert_refused_and_nothing_stored, snapshot
from tests.world import client_for, seeded_world

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory, trained):
    yield from seeded_world(django_db_blocker, tmp_path_factory, trained)


def _model(world) -> dict:
    return json.loads(world.extra["artifact"])


def _trees(doc: dict) -> list:
    return doc["learner"]["gradient_booster"]["model"]["trees"]


def _chain(depth: int, num_feature: int) -> dict:
    """A tree that is one path of ``depth`` splits, each with a leaf on its left."""
    n = 2 * depth + 1
    left, right, parents = [-1] * n, [-1] * n, [2147483647] + [0] * (n - 1)
    for level in range(depth):
        node = 2 * level
        left[node], right[node] = node + 1, node + 2
        parents[node + 1] = parents[node + 2] = node
    zeros = [0.0] * n
    return {
        "base_weights": zeros, "categories": [], "categories_nodes": [],
        "categories_segments": [], "categories_sizes": [], "default_left": [0] * n, "id": 0,
        "left_children": left, "right_children": right, "parents": parents,
        "loss_changes": zeros, "split_conditions": [0.5] * n, "split_indices": [0] * n,
        "split_type": [0] * n, "sum_hessian": [1.0] * n,
        "tree_param": {"num_deleted": "0", "num_feature": str(num_feature), "num_nodes": str(n),
                       "size_leaf_vector": "1"},
    }  # fmt: skip


def _out_of_range(tree):
    tree["left_children"][0], tree["right_children"][0] = 1000000, 1000001


def _back_to_root(tree):
    internal = next(i for i in range(1, len(tree["left_children"])) if tree["left_children"][i] > 0)
    tree["left_children"][internal] = 0


def _deep_chain(tree, world=None):
    tree.clear()
    tree.update(_chain(12_000, len(world.extra["metadata"]["feature_schema"])))


def _nan_leaf(tree):
    leaf = tree["left_children"].index(-1)
    tree["split_conditions"][leaf] = float("nan")


def _feature_out_of_range(tree):
    tree["split_indices"][0] = 5000


def _short_array(tree):
    tree["parents"].pop()


CORRUPTIONS = {
    "children-out-of-range": (_out_of_range, 0, "out of range"),
    "child-back-to-root": (_back_to_root, None, "left child 0 is out of range"),
    "chain-12000-deep": (_deep_chain, 64, "deeper than 64"),
    "nan-leaf": (_nan_leaf, None, "not finite"),
    "feature-out-of-range": (_feature_out_of_range, 0, "split feature 5000"),
    "short-array": (_short_array, None, "parents has"),
}


def _corrupt(world, kind: str, tree_index: int = 3) -> dict:
    doc = _model(world)
    corrupt = CORRUPTIONS[kind][0]
    tree = _trees(doc)[tree_index]
    corrupt(tree, world) if corrupt is _deep_chain else corrupt(tree)
    return doc


def _json(doc: dict) -> bytes:
    # NaN written the way XGBoost's own JSON writer does.
    return json.dumps(doc).encode()


# The typed arrays XGBoost writes (marker, struct code); other lists are untyped.
UBJ_TYPED = {
    **dict.fromkeys(("left_children", "right_children", "parents", "split_indices",
                     "categories", "categories_nodes", "sorted_idx"), ("l", "i")),
    **dict.fromkeys(("categories_segments", "categories_sizes"), ("L", "q")),
    **dict.fromkeys(("default_left", "split_type"), ("U", "B")),
    **dict.fromkeys(("base_weights", "loss_changes", "split_conditions", "sum_hessian"),
                    ("d", "f")),
}  # fmt: skip


def _ubj(value, key: str = "") -> bytes:
    """A small UBJSON writer laying the model out as XGBoost's own writer does."""
    if isinstance(value, dict):
        return b"{" + b"".join(_ubj_key(k) + _ubj(v, k) for k, v in value.items()) + b"}"
    if isinstance(value, list) and key in UBJ_TYPED:
        marker, code = UBJ_TYPED[key]
        count = b"L" + struct.pack(">q", len(value))
        return b"[$" + marker.encode() + b"#" + count + struct.pack(f">{len(value)}{code}", *value)
    if isinstance(value, list):
        return b"[" + b"".join(_ubj(v) for v in value) + b"]"
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):
        return b"L" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"D" + struct.pack(">d", value)
    return b"S" + _ubj_key(value)


def _ubj_key(text: str) -> bytes:
    raw = text.encode()
    return b"L" + struct.pack(">q", len(raw)) + raw


@pytest.mark.parametrize("fmt", ["json", "ubj"])
@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_structurally_unsafe_tree_is_refused_naming_tree_and_node(world, kind, fmt):
    _, node, needle = CORRUPTIONS[kind]
    doc = _corrupt(world, kind)
    artifact = _json(doc) if fmt == "json" else _ubj(doc)
    before = snapshot(world)
    response = _register(world, artifact=artifact, name=f"model.{fmt}")
    assert_refused_and_nothing_stored(world, before, response, needle=needle)
    details = response.json()["details"]
    assert details["field"] == "artifact" and details["tree"] == 3, details
    assert "tree 3" in response.json()["error"]
    if node is not None:
        assert details["node"] >= node


def test_the_seeded_booster_written_as_ubjson_by_the_test_writer_still_registers(world):
    """The writer above is faithful: an untouched model goes through it and registers."""
    response = _register(world, artifact=_ubj(_model(world)), name="model.ubj")
    assert response.status_code == 201, response.content[:300]


def test_an_explanation_from_a_stored_unsafe_artifact_is_refused_not_crashed(world):
    """A row registered before the checks existed: the artifact is written straight into
    the store and the production version pointed at it. On main this segfaults."""
    from registry.artifacts import artifact_put, booster_cache
    from registry.models import MLModelVersion

    sha, relpath = artifact_put(
        data=_json(_corrupt(world, "children-out-of-range")), suffix=".json"
    )
    MLModelVersion.objects.filter(pk=world.production.pk).update(model_hash=sha, model_path=relpath)
    booster_cache.clear()
    response = client_for(world, "analyst", api=True).get(f"/api/ml/explain/{world.incident}")
    assert response.status_code == 409, response.content[:300]
    body = response.json()
    assert body["details"]["tree"] == 3 and body["details"]["node"] == 0, body
    assert body["details"]["incident_id"] == world.incident


def test_a_booster_without_feature_names_is_refused(world):
    """Nothing proves the schema's order otherwise: on main it registers, and its
    explanations are computed on permuted inputs."""
    doc = _model(world)
    doc["learner"]["feature_names"] = []
    doc["learner"]["feature_types"] = []
    metadata = dict(world.extra["metadata"])
    metadata["feature_schema"] = list(reversed(metadata["feature_schema"]))
    before = snapshot(world)
    response = _register(world, artifact=_json(doc), metadata=json.dumps(metadata))
    assert_refused_and_nothing_stored(world, before, response, needle="no feature names")


# --- memory -------------------------------------------------------------------------------


def _npy_header(shape) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _deflated_zeros(header: bytes, size: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``header`` then ``size`` zero bytes, and its CRC-32.

    After a full flush deflate starts afresh, so one compressed 64 MiB block of zeros
    repeated is a valid stream of many: 2 GB is written without compressing 2 GB."""
    chunk = bytes(64 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [deflate.compress(header) + deflate.flush(zlib.Z_FULL_FLUSH)]
    block = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    repeats, rest = divmod(size, len(chunk))
    crc = zlib.crc32(header)
    for _ in range(repeats):
        crc = zlib.crc32(chunk, crc)
    out += [block] * repeats + [deflate.compress(chunk[:rest]) + deflate.flush()]
    return b"".join(out), zlib.crc32(chunk[:rest], crc)


@pytest.fixture(scope="module")
def zero_npz(tmp_path_factory) -> Path:
    """~2 MB .npz whose X.npy is a zero-filled 23M x 11 float64 array (2 GB), the file
    of the report; the zip is laid out by hand so the test never holds the array."""
    header = _npy_header((23_000_000, 11))
    size = len(header) + 23_000_000 * 11 * 8
    data, crc = _deflated_zeros(header, size - len(header))
    name = b"X.npy"
    sizes = struct.pack("<III", crc, len(data), size)
    local = struct.pack("<IHHHHH", 0x04034B50, 20, 0, 8, 0, 0x21) + sizes
    local += struct.pack("<HH", len(name), 0) + name
    central = struct.pack("<IHHHHHH", 0x02014B50, 20, 20, 0, 8, 0, 0x21) + sizes
    central += struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, 0) + name
    offset = len(local) + len(data)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0)
    path = tmp_path_factory.mktemp("hostile") / "zeros.npz"
    path.write_bytes(local + data + central + end)
    return path


@pytest.fixture(scope="module")
def empty_lists_json(tmp_path_factory) -> Path:
    """A 30 MB JSON model whose bulk is ten million empty lists."""
    path = tmp_path_factory.mktemp("hostile") / "lists.json"
    path.write_bytes(b'{"learner": {"attributes": [' + b"[]," * 10_000_000 + b"[]]}}")
    return path


def test_an_evaluation_set_declaring_a_huge_array_is_refused(world, zero_npz):
    before = snapshot(world)
    response = _register(world, artifact=_json(_model(world)), evaluation=zero_npz.read_bytes())
    assert_refused_and_nothing_stored(world, before, response, needle="decompressed")


def test_a_json_artifact_of_empty_lists_is_refused(world, empty_lists_json):
    before = snapshot(world)
    response = _register(world, artifact=empty_lists_json.read_bytes())
    assert_refused_and_nothing_stored(world, before, response, needle="arrays and objects")


PEAK = """
import os, resource, sys
import django
django.setup()
from registry import services, training
data = open(sys.argv[2], "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    if sys.argv[1] == "evaluation":
        services._load_evaluation(data, 11)
    else:
        training.load_booster(data)
except Exception as exc:
    print(type(exc).__name__, file=sys.stderr)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
"""


@pytest.mark.parametrize("what", ["evaluation", "artifact"])
def test_refusing_an_amplifying_upload_stays_within_a_small_multiple_of_its_size(
    what, zero_npz, empty_lists_json
):
    """Peak memory above the loaded process, in a fresh interpreter: at most 4x the upload
    plus 64 MB (on main: 2 GB for the .npz, 1 GB for the JSON)."""
    path = zero_npz if what == "evaluation" else empty_lists_json
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "govsite.settings", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", PEAK, what, str(path)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "GovernanceError" in run.stderr or "ArtifactFormatError" in run.stderr, run.stderr
    grown = int(run.stdout.strip().splitlines()[-1])
    assert grown <= 4 * path.stat().st_size + (64 << 20), (grown >> 20, "MB")
