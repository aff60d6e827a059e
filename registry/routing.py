"""Which version serves an entity: sticky, deterministic A/B assignment.

An entity's bucket is the first 8 bytes of SHA-256(salt + ":" + entity), read as a
big-endian integer h, i.e. h / 2^64 in [0, 1). The entity goes to the challenger
when its bucket is below the challenger's share: h * 10000 < share_bp * 2^64,
compared exactly in integers. The bucket never changes while the salt does not,
so an entity keeps its arm while the split is unchanged, and raising the share
only moves entities whose bucket lies between the old and the new share into the
challenger, never out of it. docs/ab-testing.md describes the same rule for
clients that route in-process from ``GET /api/v1/models/{name}/traffic/``.

Without a configured split every entity is served by the production version.
"""

import hashlib
from dataclasses import dataclass, field

from registry.models import BASIS_POINTS, MLModel, MLModelVersion, TrafficSplit

CHAMPION = "champion"
CHALLENGER = "challenger"
_SPACE = 1 << 64


@dataclass(frozen=True)
class Route:
    version: MLModelVersion
    arm: str  # "champion" or "challenger"
    shadows: list[MLModelVersion] = field(default_factory=list)


class NoServingVersion(Exception):
    pass


def bucket_int(salt: str, entity: str) -> int:
    """The entity's bucket as an integer in [0, 2^64)."""
    digest = hashlib.sha256(f"{salt}:{entity}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def bucket(salt: str, entity: str) -> float:
    """The entity's bucket in [0, 1) (for display; decisions use the exact integer)."""
    return bucket_int(salt, entity) / _SPACE


def challenger_threshold(challenger_bp: int) -> int:
    """Smallest integer bucket that goes to the champion: ceil(bp * 2^64 / 10000)."""
    return -(-challenger_bp * _SPACE // BASIS_POINTS)


def is_challenger(salt: str, entity: str, challenger_bp: int) -> bool:
    return bucket_int(salt, entity) < challenger_threshold(challenger_bp)


class PublishedRouter:
    """Route in-process from the published traffic config (the JSON of the traffic
    endpoint); this is what a SOC backend embeds instead of calling the route endpoint."""

    def __init__(self, config: dict):
        self.champion = config["champion"]
        self.challenger = config.get("challenger")
        self.shadows = config.get("shadows", [])
        share = self.challenger["share_bp"] if self.challenger else 0
        self._threshold = challenger_threshold(share)
        self._prefix = hashlib.sha256(f"{config['salt']}:".encode())

    def decide(self, entity: str) -> tuple[dict, str]:
        """(version entry, arm) for one entity."""
        if self._threshold:
            digest = self._prefix.copy()
            digest.update(entity.encode())
            if int.from_bytes(digest.digest()[:8], "big") < self._threshold:
                return self.challenger, CHALLENGER
        return self.champion, CHAMPION


def route(model: MLModel, entity: str) -> Route:
    return router(model)(entity)


def router(model: MLModel):
    """A routing function for many entities: reads the split once, then decides each
    entity in-process (batch ingest routes thousands of items per request)."""
    split = (
        TrafficSplit.objects.select_related("champion", "challenger")
        .filter(model_id=model.pk)
        .first()
    )
    if split is None or split.champion is None:
        champion = model.production_version()

        def champion_only(entity: str) -> Route:
            if champion is None:
                raise NoServingVersion(f"{model.name} has no production version")
            return Route(version=champion, arm=CHAMPION)

        return champion_only
    shadows = list(split.shadows.order_by("pk"))
    threshold = challenger_threshold(split.challenger_bp) if split.challenger_bp else 0

    def decide(entity: str) -> Route:
        if threshold and bucket_int(model.experiment_salt, entity) < threshold:
            return Route(version=split.challenger, arm=CHALLENGER, shadows=shadows)
        return Route(version=split.champion, arm=CHAMPION, shadows=shadows)

    return decide
