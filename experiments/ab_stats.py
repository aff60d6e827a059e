"""A/B statistics for two binomial arms, safe to look at any time (no Django import).

- Each arm's metric is a proportion (precision: true positives among flagged,
  labelled incidents). Its interval is Wilson's score interval (Wilson 1927),
  which stays inside [0, 1] and keeps its coverage for small counts.
- The difference challenger - champion gets Newcombe's hybrid score interval
  (Newcombe 1998, method 10), built from the two Wilson intervals.
- Significance under peeking: the mixture sequential probability ratio test
  (mSPRT; Robbins 1970, Johari, Pekelis & Walsh 2017, "Always valid inference").
  With the normal approximation theta_hat ~ N(theta, V), V = p1(1-p1)/n1 +
  p2(1-p2)/n2, and a N(0, tau^2) mixture over the effect theta under H1, the
  likelihood ratio against H0: theta = 0 is

      Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * theta_hat^2 / (2 V (V + tau^2)))

  and p = min(1, 1 / Lambda) is an always-valid p-value: by Ville's inequality
  P(sup_n Lambda_n >= 1/alpha) <= alpha under H0, so rejecting whenever
  p <= alpha at *any* look, however often one looks, keeps the type-I error at
  alpha. The running minimum over looks is kept (it is valid too).
"""

import math
from dataclasses import dataclass

from scipy.stats import norm

# Mixture scale: the size of effect the test is most sensitive to (5 points of
# precision). Any fixed tau keeps the test valid; it only trades power between sizes.
MSPRT_TAU = 0.05
# Below this many outcomes per arm the normal approximation is not trusted.
MIN_ARM_TRIALS = 30


@dataclass(frozen=True)
class Proportion:
    successes: int
    trials: int
    value: float | None
    low: float | None
    high: float | None

    def interval(self) -> tuple[float, float, float]:
        """(value, low, high); an arm without trials has none."""
        if self.value is None or self.low is None or self.high is None:
            raise ValueError("an arm without trials has no interval")
        return self.value, self.low, self.high


@dataclass(frozen=True)
class Comparison:
    difference: float | None
    low: float | None
    high: float | None
    z: float | None
    fixed_p_value: float | None  # two-sided z-test, valid only for one look
    msprt_lambda: float | None
    msprt_p_value: float | None  # always valid
    enough_data: bool


def wilson(successes: int, trials: int, confidence: float = 0.95) -> Proportion:
    """Wilson score interval for successes / trials."""
    if trials <= 0:
        return Proportion(successes, trials, None, None, None)
    z = norm.ppf(0.5 + confidence / 2)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return Proportion(successes, trials, p, max(0.0, centre - half), min(1.0, centre + half))


def newcombe(a: Proportion, b: Proportion) -> tuple[float, float]:
    """Newcombe's hybrid score interval for b.value - a.value from two Wilson intervals."""
    (va, la, ha), (vb, lb, hb) = a.interval(), b.interval()
    d = vb - va
    low = d - math.sqrt((vb - lb) ** 2 + (ha - va) ** 2)
    high = d + math.sqrt((hb - vb) ** 2 + (va - la) ** 2)
    return max(-1.0, low), min(1.0, high)


def msprt(theta_hat: float, variance: float, tau: float = MSPRT_TAU) -> float:
    """Mixture likelihood ratio of N(theta_hat | theta, V) over theta ~ N(0, tau^2) vs theta=0."""
    t2 = tau * tau
    log_lr = 0.5 * math.log(variance / (variance + t2)) + t2 * theta_hat**2 / (
        2 * variance * (variance + t2)
    )
    return math.exp(min(log_lr, 700.0))


def compare(champion: Proportion, challenger: Proportion) -> Comparison:
    """Difference challenger - champion with its interval (at the arms' confidence), a
    fixed-horizon z-test and the mSPRT."""
    if not champion.trials or not challenger.trials:
        return Comparison(None, None, None, None, None, None, None, False)
    p1, n1 = champion.interval()[0], champion.trials
    p2, n2 = challenger.interval()[0], challenger.trials
    d = p2 - p1
    low, high = newcombe(champion, challenger)
    variance = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
    enough = min(n1, n2) >= MIN_ARM_TRIALS
    if variance <= 0:
        # Both arms all-or-nothing: no spread to test against.
        return Comparison(d, low, high, None, None, None, None, enough)
    z = d / math.sqrt(variance)
    lam = msprt(d, variance)
    return Comparison(d, low, high, z, float(2 * norm.sf(abs(z))), lam, min(1.0, 1.0 / lam), enough)
