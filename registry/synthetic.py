"""Seeded synthetic SOC event generator with a known label model.

The generator stands in for the SOC backend's event stream in demos, tests and
benchmarks. Every event carries the model's features (``FEATURE_SCHEMA``), a
threat label drawn from a documented logistic model, a ``geo_region`` attribute
that is *not* a feature (fairness audits group by it), an entity key for sticky
A/B routing, an incident id and a UTC timestamp. ``docs/synthetic-data.md``
describes the same model in prose.

Generative model (per event, features drawn before the label):

* entity: drawn from a pool with log-normal activity weights; each entity has a
  home region (NA 40 %, EU 27 %, APAC 18 %, LATAM 9 %, MEA 6 %) and is
  privileged with probability 0.08.
* timestamp: local wall-clock time in the entity's region follows a business-hours
  curve ``0.12 + 0.88 * exp(-((h - 13) / 3.5)^2 / 2)`` (weekends x 0.45);
  converted to UTC with a fixed offset per region. ``login_hour`` is the local hour.
* failed_logins ~ Poisson(lambda), lambda = 0.35, or lambda ~ Gamma(1.2, 5) for a
  10 % burst component (so the burst part is negative binomial).
* bytes_out ~ round(LogNormal(ln 120000, 1.4)) bytes.
* distinct_ports = 1 + Poisson(Gamma(0.8, 2.5)).
* geo_velocity (km/h): 0 with p 0.62, LogNormal(ln 15, 0.9) with p 0.33,
  LogNormal(ln 450, 0.6) (flights) with p 0.05.
* new_device ~ Bernoulli(0.30 after a flight, else 0.04).
* process_spawn_rate (per minute) ~ Gamma(2, 1.2), x 1.8 for privileged accounts.
* dns_entropy (bits) ~ Normal(3.0, 0.35), or Normal(4.1, 0.35) for 4 %, clipped
  to [0.5, 5.5].
* auth_method: password/sso/mfa/key with p (0.30, 0.38, 0.24, 0.08), or
  (0.10, 0.25, 0.35, 0.30) for privileged accounts.
* aux_NN (optional noise features) ~ Normal(0, 1), independent of everything.

Label model: ``y ~ Bernoulli(sigmoid(true_logit(X)))`` with

    f   = log1p(failed_logins)            lb  = log10(max(bytes_out, 1)) - 5
    p   = log1p(distinct_ports)           off = 1 if login_hour < 6 or >= 22
    v   = log1p(geo_velocity / 100)       ent = dns_entropy - 3
    logit = -6.6 + 1.2 f + 0.7 lb + 1.0 p + 0.7 off + 1.0 new_device
            + 0.7 v + 0.4 privileged_account + 0.1 process_spawn_rate
            + 2.2 ent + a[auth_method]
            + 1.4 f * privileged_account           (credential abuse on admins)
            + 1.4 new_device * v                   (new device, impossible travel)
            + 1.2 max(lb, 0) * off                 (large uploads off-hours)
    a = {password: +0.40, sso: 0.00, mfa: -0.60, key: -0.20}

With no scenario the base rate is about 5 % and the Bayes-optimal AUC about
0.90 (``LABEL_COEFFICIENTS`` holds the numbers; ``true_logit`` evaluates them).

Scenario knobs (``Scenario``): drifts as a function of the time fraction
``(timestamp - start) / span`` in [0, 1), either gradual (linear ramp between
``start`` and ``end``) or sudden (``start == end``), of ``magnitude`` reference
standard deviations; and a region-correlated proxy: benign events of one region
routed through VPN exits that hop continents, which look like impossible travel
on a new device. Timestamps are ``datetime64[s]`` in UTC (naive). The default
``start`` is fixed (2025-01-06, a Monday) so that runs are reproducible.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

REGIONS: tuple[str, ...] = ("NA", "EU", "APAC", "LATAM", "MEA")
REGION_SHARES: tuple[float, ...] = (0.40, 0.27, 0.18, 0.09, 0.06)
# Fixed offsets, no DST: the volume curve only needs a plausible local clock.
REGION_UTC_OFFSET_HOURS: dict[str, int] = {"NA": -6, "EU": 1, "APAC": 8, "LATAM": -4, "MEA": 3}
AUTH_LEVELS: tuple[str, ...] = ("password", "sso", "mfa", "key")
DEFAULT_START = np.datetime64("2025-01-06T00:00:00", "s")  # a Monday, fixed for reproducibility

FEATURE_SCHEMA: list[dict] = [
    {
        "name": "failed_logins",
        "type": "numeric",
        "description": "Failed authentication attempts in the session window (count).",
    },
    {"name": "bytes_out", "type": "numeric", "description": "Bytes sent out by the session."},
    {
        "name": "distinct_ports",
        "type": "numeric",
        "description": "Distinct destination ports contacted (count, >= 1).",
    },
    {
        "name": "login_hour",
        "type": "numeric",
        "description": "Local hour (0-23) of the login in the entity's home time zone.",
    },
    {
        "name": "new_device",
        "type": "numeric",
        "description": "1 when the device fingerprint was never seen for this entity.",
    },
    {
        "name": "geo_velocity",
        "type": "numeric",
        "description": "Implied travel speed (km/h) between this and the previous login.",
    },
    {
        "name": "privileged_account",
        "type": "numeric",
        "description": "1 when the account holds administrative privileges.",
    },
    {
        "name": "process_spawn_rate",
        "type": "numeric",
        "description": "Processes spawned per minute on the host during the session.",
    },
    {
        "name": "dns_entropy",
        "type": "numeric",
        "description": "Mean Shannon entropy (bits per character) of queried DNS labels.",
    },
    {
        "name": "auth_method",
        "type": "categorical",
        "levels": list(AUTH_LEVELS),
        "description": "Authentication method, as an integer code into levels.",
    },
]
CORE_FEATURES: tuple[str, ...] = tuple(f["name"] for f in FEATURE_SCHEMA)

# How each feature reacts to drift and how it is written in records.
_KIND = {
    "failed_logins": "count",
    "bytes_out": "count",
    "distinct_ports": "count",
    "login_hour": "hour",
    "new_device": "binary",
    "geo_velocity": "continuous",
    "privileged_account": "binary",
    "process_spawn_rate": "continuous",
    "dns_entropy": "continuous",
    "auth_method": "categorical",
}
_LOWER_BOUND = {
    "failed_logins": 0.0,
    "bytes_out": 0.0,
    "distinct_ports": 1.0,
    "geo_velocity": 0.0,
    "process_spawn_rate": 0.0,
    "dns_entropy": 0.0,
}

LABEL_COEFFICIENTS: dict[str, float] = {
    "intercept": -6.6,
    "log1p_failed_logins": 1.2,
    "log10_bytes_out_minus_5": 0.7,
    "log1p_distinct_ports": 1.0,
    "off_hours": 0.7,
    "new_device": 1.0,
    "log1p_geo_velocity_per_100": 0.7,
    "privileged_account": 0.4,
    "process_spawn_rate": 0.1,
    "dns_entropy_minus_3": 2.2,
    "failed_x_privileged": 1.4,
    "new_device_x_velocity": 1.4,
    "bytes_x_off_hours": 1.2,
}
AUTH_METHOD_COEFFICIENTS: dict[str, float] = {
    "password": 0.40,
    "sso": 0.0,
    "mfa": -0.60,
    "key": -0.20,
}


def schema(n_noise_features: int = 0) -> list[dict]:
    """The ordered feature schema: the core features, then ``aux_00`` ... noise."""
    noise = [
        {
            "name": f"aux_{i:02d}",
            "type": "numeric",
            "description": "Noise feature, Normal(0, 1), independent of the label.",
        }
        for i in range(n_noise_features)
    ]
    return [
        dict(f, levels=list(f["levels"])) if "levels" in f else dict(f) for f in FEATURE_SCHEMA
    ] + noise


def feature_names(n_noise_features: int = 0) -> list[str]:
    return [f["name"] for f in schema(n_noise_features)]


def _col(name: str) -> int:
    return CORE_FEATURES.index(name)


def true_logit(X: np.ndarray) -> np.ndarray:
    """Log-odds of a threat under the label model; X columns in schema order."""
    X = np.asarray(X, dtype=np.float64)
    c = LABEL_COEFFICIENTS
    f = np.log1p(X[:, _col("failed_logins")])
    lb = np.log10(np.maximum(X[:, _col("bytes_out")], 1.0)) - 5.0
    ports = np.log1p(X[:, _col("distinct_ports")])
    hour = X[:, _col("login_hour")]
    off = ((hour < 6) | (hour >= 22)).astype(np.float64)
    nd = X[:, _col("new_device")]
    v = np.log1p(X[:, _col("geo_velocity")] / 100.0)
    priv = X[:, _col("privileged_account")]
    auth = np.array([AUTH_METHOD_COEFFICIENTS[level] for level in AUTH_LEVELS])
    codes = np.clip(X[:, _col("auth_method")].astype(np.int64), 0, len(AUTH_LEVELS) - 1)
    return (
        c["intercept"]
        + c["log1p_failed_logins"] * f
        + c["log10_bytes_out_minus_5"] * lb
        + c["log1p_distinct_ports"] * ports
        + c["off_hours"] * off
        + c["new_device"] * nd
        + c["log1p_geo_velocity_per_100"] * v
        + c["privileged_account"] * priv
        + c["process_spawn_rate"] * X[:, _col("process_spawn_rate")]
        + c["dns_entropy_minus_3"] * (X[:, _col("dns_entropy")] - 3.0)
        + auth[codes]
        + c["failed_x_privileged"] * f * priv
        + c["new_device_x_velocity"] * nd * v
        + c["bytes_x_off_hours"] * np.maximum(lb, 0.0) * off
    )


def true_probability(X: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-true_logit(X)))


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Drift:
    """A shift of one feature as a function of the time fraction t in [0, 1).

    ``magnitude`` is in reference standard deviations (``reference_stats``) for
    numeric features; for the categorical feature it is the probability, at full
    strength, that an event is reassigned to ``level``. The strength ramps linearly
    from 0 at ``start`` to 1 at ``end``; ``start == end`` is a step (sudden drift).
    With ``affects_labels`` (default) the shift happens before labelling, so
    P(y | x) is unchanged (covariate drift); otherwise it happens after, so the
    same x now carries a different risk (concept drift).
    """

    feature: str
    magnitude: float
    start: float = 0.0
    end: float = 1.0
    level: str | None = None
    affects_labels: bool = True

    @classmethod
    def gradual(cls, feature: str, magnitude: float, start: float = 0.0, end: float = 1.0, **kw):
        return cls(feature, magnitude, start, end, **kw)

    @classmethod
    def sudden(cls, feature: str, magnitude: float, at: float = 0.5, **kw):
        return cls(feature, magnitude, at, at, **kw)

    def strength(self, t: np.ndarray) -> np.ndarray:
        if self.end <= self.start:
            return (t >= self.start).astype(np.float64)
        return np.clip((t - self.start) / (self.end - self.start), 0.0, 1.0)


@dataclass(frozen=True)
class Scenario:
    """Knobs layered on the baseline population.

    ``region_proxy`` is the fraction (0..1) of benign events in ``proxy_region``
    that come through continent-hopping VPN exits: their ``geo_velocity`` becomes
    LogNormal(ln 900, 0.5) km/h and ``new_device`` is set with probability 0.5.
    The label is drawn before this, so these events stay benign; a model trained on
    them cannot see the region and scores that region's benign users higher. The
    false-positive gap is widest around 0.1-0.3 (APAC about twice the others);
    higher values make VPN hops so common that the model learns they are benign.
    """

    drifts: tuple[Drift, ...] = ()
    region_proxy: float = 0.0
    proxy_region: str = "APAC"

    def __post_init__(self):
        object.__setattr__(self, "drifts", tuple(self.drifts))
        if not 0.0 <= self.region_proxy <= 1.0:
            raise ValueError("region_proxy must be within [0, 1]")
        if self.proxy_region not in REGIONS:
            raise ValueError(f"proxy_region must be one of {REGIONS}")


# --------------------------------------------------------------------------- events


@dataclass
class Events:
    """A generated batch; every array has one entry per event, in time order.

    ``X`` is float64 (n x p) in ``feature_names`` order with categorical features
    as integer codes into their schema levels; ``y`` is int8 (1 = threat);
    ``timestamp`` is ``datetime64[s]`` in UTC; ``time_fraction`` is the position
    of each event in the sampled period, in [0, 1); ``row`` is the event's index
    in the original batch, kept through ``subset``/``split`` so ids stay stable.
    Ids are built on access (formatting a million strings costs more than the
    rest of the generation).
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    geo_region: np.ndarray
    entity: np.ndarray
    timestamp: np.ndarray
    time_fraction: np.ndarray
    row: np.ndarray
    run_tag: str
    schema: list[dict] = field(repr=False)

    @property
    def incident_id(self) -> np.ndarray:
        """``INC-<run_tag>-<row>``: unique per event and per generation arguments."""
        return _ids(f"INC-{self.run_tag}-", self.row)

    @property
    def request_id(self) -> np.ndarray:
        """``req-<run_tag>-<row>``: the ingest idempotency key of each event."""
        return _ids(f"req-{self.run_tag}-", self.row)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def threat_rate(self) -> float:
        return float(self.y.mean()) if len(self) else 0.0

    def subset(self, index: np.ndarray) -> Events:
        """Rows selected by an integer or boolean index, other fields shared."""
        per_row = {
            f.name: getattr(self, f.name)[index]
            for f in dataclasses.fields(self)
            if f.name not in ("feature_names", "schema", "run_tag")
        }
        return Events(
            feature_names=self.feature_names, schema=self.schema, run_tag=self.run_tag, **per_row
        )

    def split(self, frac: float, seed: int = 0, *, by_time: bool = False) -> tuple[Events, Events]:
        """Split into (first, rest) with ``round(frac * n)`` rows in the first part.

        Random by default (each part keeps time order); ``by_time=True`` puts the
        earliest events first, e.g. train on days 1-5 and monitor days 6-7.
        """
        if not 0.0 <= frac <= 1.0:
            raise ValueError("frac must be within [0, 1]")
        n_first = int(round(frac * len(self)))
        if by_time:
            mask = np.zeros(len(self), dtype=bool)
            mask[:n_first] = True
        else:
            chosen = np.random.default_rng(seed).permutation(len(self))[:n_first]
            mask = np.zeros(len(self), dtype=bool)
            mask[chosen] = True
        return self.subset(mask), self.subset(~mask)

    def iter_records(
        self, start: int = 0, stop: int | None = None, *, categorical: str = "code"
    ) -> Iterator[dict]:
        """JSON-ready prediction items for the ingest API (no score or model yet).

        Count, binary and hour features are ints, the rest floats. Categorical
        features are integer codes (``categorical="code"``, the values the model
        saw) or level names (``categorical="level"``).
        """
        if categorical not in ("code", "level"):
            raise ValueError("categorical must be 'code' or 'level'")
        stop = len(self) if stop is None else min(stop, len(self))
        columns = [self._column_values(j, start, stop, categorical) for j in range(self.X.shape[1])]
        stamps = np.datetime_as_string(self.timestamp[start:stop], unit="s")
        names, tag = self.feature_names, self.run_tag
        for k, i in enumerate(range(start, stop)):
            yield {
                "request_id": f"req-{tag}-{self.row[i]}",
                "incident_id": f"INC-{tag}-{self.row[i]}",
                "entity": str(self.entity[i]),
                "features": {name: col[k] for name, col in zip(names, columns, strict=True)},
                "attributes": {"geo_region": str(self.geo_region[i])},
                "timestamp": f"{stamps[k]}Z",
            }

    def to_records(
        self, start: int = 0, stop: int | None = None, *, categorical: str = "code"
    ) -> list[dict]:
        return list(self.iter_records(start, stop, categorical=categorical))

    def _column_values(self, j: int, start: int, stop: int, categorical: str) -> list:
        values = self.X[start:stop, j]
        spec = self.schema[j]
        if spec["type"] == "categorical":
            codes = values.astype(np.int64)
            if categorical == "level":
                return np.asarray(spec["levels"], dtype=object)[codes].tolist()
            return codes.tolist()
        if _KIND.get(spec["name"]) in ("count", "binary", "hour"):
            return values.astype(np.int64).tolist()
        return values.tolist()

    def to_frame(self):
        """A pandas DataFrame of features, label and attributes (pandas imported lazily)."""
        import pandas as pd

        frame = pd.DataFrame(self.X, columns=list(self.feature_names))
        frame["y"] = self.y
        frame["geo_region"] = self.geo_region
        frame["entity"] = self.entity
        frame["incident_id"] = self.incident_id
        frame["request_id"] = self.request_id
        frame["timestamp"] = self.timestamp
        return frame


# --------------------------------------------------------------------------- sampling


def _to_epoch_seconds(start) -> int:
    if start is None:
        return int(DEFAULT_START.astype(np.int64))
    if isinstance(start, dt.datetime):
        if start.tzinfo is not None:
            start = start.astimezone(dt.UTC).replace(tzinfo=None)
        return int(np.datetime64(start, "s").astype(np.int64))
    if isinstance(start, (int, float, np.integer, np.floating)):
        return int(start)
    return int(np.datetime64(start, "s").astype(np.int64))


def _local_volume(local_seconds: np.ndarray) -> np.ndarray:
    """Relative event volume at local wall-clock times: business hours, quiet weekends."""
    hour = (local_seconds // 3600) % 24 + 0.5
    weekday = (local_seconds // 86400 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    daily = 0.12 + 0.88 * np.exp(-0.5 * ((hour - 13.0) / 3.5) ** 2)
    return daily * np.where(weekday >= 5, 0.45, 1.0)


def _sample_times(rng, region_code: np.ndarray, start_s: int, span_s: float):
    """UTC seconds and local hours, drawn from each region's local volume curve."""
    n = region_code.shape[0]
    utc = np.empty(n, dtype=np.float64)
    local_hour = np.empty(n, dtype=np.float64)
    for r, region in enumerate(REGIONS):
        rows = np.flatnonzero(region_code == r)
        if rows.size == 0:
            continue
        offset = REGION_UTC_OFFSET_HOURS[region] * 3600
        lo, hi = start_s + offset, start_s + offset + span_s
        # Hour-aligned buckets so the volume curve is constant within each bucket.
        inner = np.arange(np.floor(lo / 3600) + 1, np.ceil(hi / 3600)) * 3600.0
        edges = np.concatenate(([lo], inner, [hi]))
        weights = np.diff(edges) * _local_volume(edges[:-1])
        cdf = np.cumsum(weights)
        bucket = np.searchsorted(cdf, rng.random(rows.size) * cdf[-1], side="right")
        bucket = np.minimum(bucket, weights.size - 1)
        local = edges[bucket] + rng.random(rows.size) * np.diff(edges)[bucket]
        utc[rows] = local - offset
        local_hour[rows] = (local // 3600) % 24
    return utc, local_hour


def _entity_pool(rng, n_entities: int):
    is_host = rng.random(n_entities) < 0.4
    numbers = np.char.zfill(np.arange(n_entities).astype(str), 5)
    names = np.char.add(np.where(is_host, "host-", "user-"), numbers)
    region = rng.choice(len(REGIONS), size=n_entities, p=REGION_SHARES)
    privileged = rng.random(n_entities) < 0.08
    activity = rng.lognormal(0.0, 1.0, n_entities)
    return names, region, privileged, activity / activity.sum()


def _sample_features(rng, privileged: np.ndarray, local_hour: np.ndarray) -> np.ndarray:
    """Core features for n events (columns in CORE_FEATURES order), before any scenario."""
    n = privileged.shape[0]
    X = np.empty((n, len(CORE_FEATURES)), dtype=np.float64)
    burst = rng.random(n) < 0.10
    lam = np.where(burst, rng.gamma(1.2, 5.0, n), 0.35)
    X[:, 0] = rng.poisson(lam)
    X[:, 1] = np.rint(rng.lognormal(np.log(120_000.0), 1.4, n))
    X[:, 2] = 1 + rng.poisson(rng.gamma(0.8, 2.5, n))
    X[:, 3] = local_hour
    travel = rng.random(n)
    flight = travel >= 0.95
    commute = (travel >= 0.62) & ~flight
    velocity = np.zeros(n)
    velocity[commute] = rng.lognormal(np.log(15.0), 0.9, int(commute.sum()))
    velocity[flight] = rng.lognormal(np.log(450.0), 0.6, int(flight.sum()))
    X[:, 4] = rng.random(n) < np.where(flight, 0.30, 0.04)
    X[:, 5] = velocity
    X[:, 6] = privileged
    X[:, 7] = rng.gamma(2.0, 1.2, n) * np.where(privileged, 1.8, 1.0)
    odd_domains = rng.random(n) < 0.04
    X[:, 8] = np.clip(rng.normal(np.where(odd_domains, 4.1, 3.0), 0.35), 0.5, 5.5)
    u = rng.random(n)
    cdf_regular = np.cumsum([0.30, 0.38, 0.24, 0.08])
    cdf_admin = np.cumsum([0.10, 0.25, 0.35, 0.30])
    codes = np.where(
        privileged,
        np.searchsorted(cdf_admin, u, side="right"),
        np.searchsorted(cdf_regular, u, side="right"),
    )
    X[:, 9] = np.minimum(codes, len(AUTH_LEVELS) - 1)
    return X


# --------------------------------------------------------------------------- scenario effects


@functools.lru_cache(maxsize=1)
def reference_stats() -> dict[str, tuple[float, float]]:
    """Mean and std of each core feature in a fixed baseline sample.

    Drift magnitudes are in these standard deviations. The sample is 200,000
    events, seed 20250106, no scenario, default period; noise features are
    Normal(0, 1) by construction.
    """
    base = generate(200_000, seed=20250106)
    return {
        name: (float(base.X[:, j].mean()), float(base.X[:, j].std()))
        for j, name in enumerate(base.feature_names)
    }


def _feature_stats(name: str) -> tuple[float, float]:
    return reference_stats()[name] if name in CORE_FEATURES else (0.0, 1.0)


def _stochastic_round(values: np.ndarray, rng) -> np.ndarray:
    """Round to an integer neighbour so the expected value is unchanged."""
    low = np.floor(values)
    return low + (rng.random(values.shape[0]) < values - low)


def _check_drift(drift: Drift, names: Sequence[str]) -> None:
    if drift.feature not in names:
        raise ValueError(f"unknown drift feature {drift.feature!r}")
    is_categorical = _KIND.get(drift.feature) == "categorical"
    if is_categorical and drift.level not in AUTH_LEVELS:
        raise ValueError(f"drift on {drift.feature!r} needs level in {AUTH_LEVELS}")
    if is_categorical and not 0.0 <= drift.magnitude <= 1.0:
        raise ValueError("categorical drift magnitude is a probability in [0, 1]")
    if not is_categorical and drift.level is not None:
        raise ValueError("level only applies to the categorical feature")
    if not 0.0 <= drift.start <= drift.end <= 1.0:
        raise ValueError("drift needs 0 <= start <= end <= 1")


def _apply_drift(X: np.ndarray, names: Sequence[str], drift: Drift, t: np.ndarray, rng) -> None:
    """Shift column ``drift.feature`` in place by magnitude x std x strength(t)."""
    j = names.index(drift.feature)
    kind = _KIND.get(drift.feature, "continuous")
    strength = drift.strength(t)
    u = rng.random(t.shape[0])
    if kind == "categorical":
        X[u < drift.magnitude * strength, j] = AUTH_LEVELS.index(drift.level)
        return
    mean, std = _feature_stats(drift.feature)
    delta = drift.magnitude * std * strength
    if kind == "binary":
        # Flip just enough rows that the expected mean moves by delta.
        up = delta > 0
        flip_p = np.where(up, delta / max(1.0 - mean, 1e-9), -delta / max(mean, 1e-9))
        flip = u < flip_p
        X[flip & up & (X[:, j] == 0), j] = 1.0
        X[flip & ~up & (X[:, j] == 1), j] = 0.0
        return
    if kind in ("count", "hour"):
        delta = _stochastic_round(delta, rng)
    shifted = X[:, j] + delta
    if kind == "hour":
        shifted = np.mod(shifted, 24.0)
    elif drift.feature in _LOWER_BOUND:
        shifted = np.maximum(shifted, _LOWER_BOUND[drift.feature])
    X[:, j] = shifted


def _apply_region_proxy(X, y, region_code, scenario: Scenario, rng) -> None:
    """Benign VPN hops in one region: fast implied travel, fresh device fingerprints."""
    n = y.shape[0]
    u_pick, u_device = rng.random(n), rng.random(n)
    velocity = rng.lognormal(np.log(900.0), 0.5, n)
    region = REGIONS.index(scenario.proxy_region)
    hop = (region_code == region) & (y == 0) & (u_pick < scenario.region_proxy)
    X[hop, _col("geo_velocity")] = velocity[hop]
    X[hop & (u_device < 0.5), _col("new_device")] = 1.0


def _run_tag(*parts) -> str:
    """Short digest of the generation arguments, so ids differ between configurations."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:8]


def _ids(prefix: str, rows: np.ndarray) -> np.ndarray:
    return np.char.add(prefix, rows.astype(str))


# --------------------------------------------------------------------------- entry point


def generate(
    n: int,
    *,
    seed: int = 0,
    scenario: Scenario | None = None,
    start=None,
    days: float = 7.0,
    n_noise_features: int = 0,
    n_entities: int | None = None,
) -> Events:
    """Generate ``n`` events over ``days`` from ``start`` (UTC; default 2025-01-06).

    ``start`` may be a datetime (aware ones are converted to UTC), a
    ``datetime64``, an ISO string or epoch seconds. ``n_entities`` defaults to
    ``clip(n // 20, 50, 50000)``. The same arguments always give the same events,
    and each stage draws from its own random stream, so a scenario knob leaves
    every other feature's values untouched.
    """
    if n < 0 or days <= 0 or n_noise_features < 0:
        raise ValueError("need n >= 0, days > 0 and n_noise_features >= 0")
    scenario = scenario or Scenario()
    names = feature_names(n_noise_features)
    for drift in scenario.drifts:
        _check_drift(drift, names)
    n_entities = n_entities or int(np.clip(n // 20, 50, 50_000))
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    start_s, span_s = _to_epoch_seconds(start), float(days) * 86400.0

    pool_names, pool_region, pool_priv, pool_p = _entity_pool(streams[0], n_entities)
    who = streams[0].choice(n_entities, size=n, p=pool_p)
    utc, local_hour = _sample_times(streams[1], pool_region[who], start_s, span_s)
    order = np.argsort(utc)  # float times: ties have probability ~0
    who, utc, local_hour = who[order], utc[order], local_hour[order]

    X = np.empty((n, len(names)), dtype=np.float64)
    X[:, : len(CORE_FEATURES)] = _sample_features(streams[2], pool_priv[who], local_hour)
    X[:, len(CORE_FEATURES) :] = streams[3].standard_normal((n, n_noise_features))
    t = (utc - start_s) / span_s
    for drift in scenario.drifts:
        if drift.affects_labels:
            _apply_drift(X, names, drift, t, streams[4])
    y = (streams[5].random(n) < true_probability(X)).astype(np.int8)
    if scenario.region_proxy > 0:
        _apply_region_proxy(X, y, pool_region[who], scenario, streams[6])
    for drift in scenario.drifts:
        if not drift.affects_labels:
            _apply_drift(X, names, drift, t, streams[7])

    return Events(
        X=X,
        y=y,
        feature_names=tuple(names),
        geo_region=np.asarray(REGIONS)[pool_region[who]],
        entity=pool_names[who],
        timestamp=np.floor(utc).astype(np.int64).astype("datetime64[s]"),
        time_fraction=t,
        row=np.arange(n, dtype=np.int64),
        run_tag=_run_tag(seed, n, scenario, start_s, span_s, n_noise_features, n_entities),
        schema=schema(n_noise_features),
    )
