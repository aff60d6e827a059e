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

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import DomainError
from registry.models import BASIS_POINTS, MLModel, MLModelVersion, TrafficSplit

CHAMPION = "champion"
CHALLENGER = "challenger"
_SPACE = 1 << 64


@dataclass(frozen=True)
class Route:
    version: MLModelVersion
    arm: str  # "champion" or "challenger"
    shadows: list[MLModelVersion] = field(default_factory=list)


@dataclass(frozen=True)
class Router:
    """Routes many entities of one model (``router``); ``fixed`` is the answer when it
    does not depend on the entity (no challenger share), else None."""

    decide: Callable[[str], Route]
    fixed: Route | None = None

    def __call__(self, entity: str) -> Route:
        return self.decide(entity)


class NoServingVersion(DomainError):
    """The model has no version that serves traffic (409); `details` names the model."""

    status = 409


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

    def __init__(self, config: dict[str, Any]) -> None:
        self.champion = config["champion"]
        self.challenger = config.get("challenger")
        self.shadows = config.get("shadows", [])
        share = self.challenger["share_bp"] if self.challenger else 0
        self._threshold = challenger_threshold(share)
        self._prefix = hashlib.sha256(f"{config['salt']}:".encode())

    def decide(self, entity: str) -> tuple[dict[str, Any], str]:
        """(version entry, arm) for one entity."""
        if self.challenger is not None and self._threshold:
            digest = self._prefix.copy()
            digest.update(entity.encode())
            if int.from_bytes(digest.digest()[:8], "big") < self._threshold:
                return self.challenger, CHALLENGER
        return self.champion, CHAMPION


def route(model: MLModel, entity: str) -> Route:
    return router(model)(entity)


def router(model: MLModel) -> Router:
    """A routing function for many entities: reads the split once, then decides each
    entity in-process (batch ingest routes thousands of items per request)."""
    split = (
        TrafficSplit.objects.select_related("champion", "challenger")
        .filter(model_id=model.pk)
        .first()
    )
    if split is None or split.champion is None:
        champion = model.production_version()
        fixed = Route(version=champion, arm=CHAMPION) if champion is not None else None

        def champion_only(entity: str) -> Route:
            if fixed is None:
                raise NoServingVersion(
                    f"{model.name} has no production version", {"model": model.name}
                )
            return fixed

        return Router(champion_only, fixed)
    shadows = list(split.shadows.order_by("pk"))
    threshold = challenger_threshold(split.challenger_bp) if split.challenger_bp else 0
    to_champion = Route(version=split.champion, arm=CHAMPION, shadows=shadows)
    to_challenger = (
        Route(version=split.challenger, arm=CHALLENGER, shadows=shadows)
        if split.challenger is not None
        else None
    )

    def decide(entity: str) -> Route:
        if (
            to_challenger is not None
            and threshold
            and bucket_int(model.experiment_salt, entity) < threshold
        ):
            return to_challenger
        return to_champion

    return Router(decide, None if threshold else to_champion)


@dataclass(frozen=True)
class RouteEntry:
    id: int
    version: str


@dataclass(frozen=True)
class RouteTable:
    """The routing decision data of one model, without full version rows (the route
    endpoint answers from this: a version's JSON columns are never loaded)."""

    model: str
    salt: str
    champion: RouteEntry | None
    challenger: RouteEntry | None
    threshold: int
    shadows: tuple[RouteEntry, ...] = ()

    def decide(self, entity: str) -> tuple[RouteEntry, str]:
        if self.champion is None:
            raise NoServingVersion(f"{self.model} has no production version", {"model": self.model})
        if (
            self.challenger is not None
            and self.threshold
            and bucket_int(self.salt, entity) < self.threshold
        ):
            return self.challenger, CHALLENGER
        return self.champion, CHAMPION


# Shadows of a split at a revision never change (every change bumps the revision and
# the save time), so each process keeps them instead of querying them per request.
_shadow_cache: dict[tuple, tuple[RouteEntry, ...]] = {}


def _shadows_at(split_id: int, revision: int, saved) -> tuple[RouteEntry, ...]:
    key = (split_id, revision, saved)
    if key not in _shadow_cache:
        if len(_shadow_cache) > 1000:
            _shadow_cache.clear()
        rows = MLModelVersion.objects.filter(shadowdeployment__split_id=split_id).order_by("pk")
        _shadow_cache[key] = tuple(RouteEntry(*r) for r in rows.values_list("pk", "version"))
    return _shadow_cache[key]


def _route_permission(user):
    """registry.view_mlmodelversion held directly or through a group (ModelBackend's rule)."""
    from django.contrib.auth.models import Permission
    from django.db.models import Q

    return Permission.objects.filter(
        Q(user=user.pk) | Q(group__user=user.pk),
        content_type__app_label="registry",
        codename="view_mlmodelversion",
    )


@functools.cache
def _route_sql() -> str:
    """One statement for the route endpoint: the split (or the production version when
    there is none) and the caller's permission. The ORM would spend longer compiling
    this than the database spends running it, on every request of the SOC backend."""
    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.contenttypes.models import ContentType

    def table(model):
        return model._meta.db_table

    user_perms = table(User.user_permissions.through)
    user_groups = table(User.groups.through)
    group_perms = table(Group.permissions.through)
    return f"""
        SELECT s.id, s.revision, s.updated_at, m.experiment_salt, c.id, c.version, ch.id,
               ch.version, s.challenger_bp, p.id, p.version,
               (%(superuser)s OR EXISTS (
                 SELECT 1 FROM {table(Permission)} pm
                 JOIN {table(ContentType)} ct ON ct.id = pm.content_type_id
                 WHERE ct.app_label = 'registry' AND pm.codename = 'view_mlmodelversion' AND (
                   EXISTS (SELECT 1 FROM {user_perms} up
                           WHERE up.permission_id = pm.id AND up.user_id = %(user)s)
                   OR EXISTS (SELECT 1 FROM {group_perms} gp
                              JOIN {user_groups} ug ON ug.group_id = gp.group_id
                              WHERE gp.permission_id = pm.id AND ug.user_id = %(user)s))))
        FROM {table(MLModel)} m
        LEFT JOIN {table(TrafficSplit)} s ON s.model_id = m.id
        LEFT JOIN {table(MLModelVersion)} c ON c.id = s.champion_id
        LEFT JOIN {table(MLModelVersion)} ch ON ch.id = s.challenger_id
        LEFT JOIN {table(MLModelVersion)} p ON p.model_id = m.id AND p.status = 'production'
        WHERE m.name = %(name)s
    """


def route_table(*, model_name: str, user) -> tuple[RouteTable | None, bool]:
    """The model's routing table (None: no such model) and whether the user may read it."""
    from django.db import connection

    with connection.cursor() as cursor:
        params = {"superuser": bool(user.is_superuser), "user": user.pk, "name": model_name}
        cursor.execute(_route_sql(), params)
        row = cursor.fetchone()
    if row is None:
        return None, bool(user.is_superuser or _route_permission(user).exists())
    split_id, revision, saved, salt, champion_id, champion, challenger_id = row[:7]
    challenger, share, production_id, production, allowed = row[7:]
    if not allowed:
        return None, False
    if split_id is None or champion_id is None:
        entry = RouteEntry(production_id, production) if production_id else None
        return RouteTable(model_name, salt, entry, None, 0), True
    table = RouteTable(
        model=model_name,
        salt=salt,
        champion=RouteEntry(champion_id, champion),
        challenger=RouteEntry(challenger_id, challenger) if challenger_id else None,
        threshold=challenger_threshold(share) if challenger_id else 0,
        shadows=_shadows_at(split_id, revision, saved),
    )
    return table, True
