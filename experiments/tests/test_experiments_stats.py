"""The A/B statistics against scipy and published values on fixed data."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import binomtest, norm

from experiments import ab_stats


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (56, 70), (481, 500), (900, 3000)])
def test_wilson_interval_equals_scipys(k, n):
    mine = ab_stats.wilson(k, n)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert mine.value == pytest.approx(k / n)
    assert mine.low == pytest.approx(ci.low, abs=1e-12)
    assert mine.high == pytest.approx(ci.high, abs=1e-12)


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, example (56/70 vs 48/80), method 10.
    champion, challenger = ab_stats.wilson(48, 80), ab_stats.wilson(56, 70)
    low, high = ab_stats.newcombe(champion, challenger)
    assert challenger.value - champion.value == pytest.approx(0.2, abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_the_fixed_z_test_is_the_unpooled_wald_test():
    champion, challenger = ab_stats.wilson(420, 500), ab_stats.wilson(380, 500)
    result = ab_stats.compare(champion, challenger)
    v = 0.84 * 0.16 / 500 + 0.76 * 0.24 / 500
    assert result.z == pytest.approx(-0.08 / math.sqrt(v))
    assert result.fixed_p_value == pytest.approx(2 * norm.cdf(-0.08 / math.sqrt(v)))


@pytest.mark.parametrize("theta_hat,variance", [(0.0, 1e-3), (-0.04, 4e-4), (0.08, 6e-4)])
def test_msprt_ratio_equals_the_mixture_integral(theta_hat, variance):
    tau = ab_stats.MSPRT_TAU
    sd = math.sqrt(variance)

    def integrand(theta):
        return norm.pdf(theta_hat, loc=theta, scale=sd) * norm.pdf(theta, scale=tau)

    numerator, _ = integrate.quad(integrand, -1, 1, points=[theta_hat], epsabs=1e-14)
    expected = numerator / norm.pdf(theta_hat, scale=sd)
    assert ab_stats.msprt(theta_hat, variance) == pytest.approx(expected, rel=1e-7)


def test_msprt_keeps_its_error_rate_when_peeking_after_every_batch():
    rng = np.random.default_rng(11)
    runs, looks, batch, p, alpha = 400, 40, 25, 0.3, 0.05
    rejected = 0
    for _ in range(runs):
        a = rng.binomial(1, p, looks * batch).cumsum()
        b = rng.binomial(1, p, looks * batch).cumsum()
        for look in range(1, looks + 1):
            n = look * batch
            result = ab_stats.compare(ab_stats.wilson(a[n - 1], n), ab_stats.wilson(b[n - 1], n))
            if result.msprt_p_value is not None and result.msprt_p_value <= alpha:
                rejected += 1
                break
    # Under H0 the rate is at most alpha (binomial 99.9 % margin for 400 runs).
    assert rejected / runs <= alpha + 3.1 * math.sqrt(alpha * (1 - alpha) / runs)


def test_msprt_detects_a_real_drop():
    result = ab_stats.compare(ab_stats.wilson(850, 1000), ab_stats.wilson(700, 1000))
    assert result.enough_data
    assert result.difference == pytest.approx(-0.15)
    assert result.msprt_p_value < 0.001


def test_small_or_degenerate_arms_are_not_tested():
    assert not ab_stats.compare(ab_stats.wilson(5, 10), ab_stats.wilson(4, 10)).enough_data
    empty = ab_stats.compare(ab_stats.wilson(0, 0), ab_stats.wilson(4, 10))
    assert empty.difference is None and empty.msprt_p_value is None
    flat = ab_stats.compare(ab_stats.wilson(40, 40), ab_stats.wilson(40, 40))
    assert flat.msprt_p_value is None
