"""Sticky SHA-256 assignment: stable, monotone when a share grows, shares as configured."""

import hashlib

import pytest
from scipy.stats import binom

from registry.routing import (
    CHALLENGER,
    PublishedRouter,
    bucket,
    bucket_int,
    challenger_threshold,
    is_challenger,
)

SALT = "3f9a1c0d5e7b2a64"
ENTITIES = [f"host-{i:06d}.corp.example" for i in range(100_000)]


def test_the_bucket_is_the_documented_sha256_prefix():
    digest = hashlib.sha256(f"{SALT}:alice".encode()).digest()
    assert bucket_int(SALT, "alice") == int.from_bytes(digest[:8], "big")
    assert 0 <= bucket(SALT, "alice") < 1


def test_an_entity_keeps_its_arm_while_the_split_is_unchanged():
    first = [is_challenger(SALT, e, 1000) for e in ENTITIES]
    router = PublishedRouter(_config(1000))
    again = [router.decide(e)[1] == CHALLENGER for e in ENTITIES]
    assert first == again == [is_challenger(SALT, e, 1000) for e in ENTITIES]


def test_raising_the_share_only_moves_entities_into_the_challenger():
    before = {e for e in ENTITIES if is_challenger(SALT, e, 1000)}
    after = {e for e in ENTITIES if is_challenger(SALT, e, 2000)}
    assert before <= after
    assert len(after) > len(before)
    lowered = {e for e in ENTITIES if is_challenger(SALT, e, 500)}
    assert lowered <= before


@pytest.mark.parametrize("share_bp", [100, 1000, 2500, 5000, 9000])
def test_the_observed_share_is_within_a_binomial_tolerance(share_bp):
    n = len(ENTITIES)
    hits = sum(is_challenger(SALT, e, share_bp) for e in ENTITIES)
    p = share_bp / 10_000
    # Two-sided 99.99 % binomial acceptance region for the count.
    low, high = binom.ppf(0.00005, n, p), binom.ppf(0.99995, n, p)
    assert low <= hits <= high


def test_the_threshold_is_exact_at_the_edges():
    assert challenger_threshold(0) == 0
    assert challenger_threshold(10_000) == 1 << 64
    assert not any(is_challenger(SALT, e, 0) for e in ENTITIES[:1000])
    assert all(is_challenger(SALT, e, 10_000) for e in ENTITIES[:1000])


def test_another_salt_gives_an_independent_assignment():
    a = [is_challenger(SALT, e, 5000) for e in ENTITIES[:20_000]]
    b = [is_challenger("another-salt", e, 5000) for e in ENTITIES[:20_000]]
    agreement = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    assert 0.47 < agreement < 0.53


def _config(share_bp):
    return {
        "salt": SALT,
        "champion": {"id": 1, "version": "1.0.0", "share_bp": 10_000 - share_bp},
        "challenger": {"id": 2, "version": "1.1.0", "share_bp": share_bp},
        "shadows": [],
    }
