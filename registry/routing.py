"""Which version serves an entity.

Until a traffic split is configured every entity is served by the model's
production version (the champion).
"""

from dataclasses import dataclass, field

from registry.models import MLModel, MLModelVersion


@dataclass(frozen=True)
class Route:
    version: MLModelVersion
    arm: str  # "champion" or "challenger"
    shadows: list[MLModelVersion] = field(default_factory=list)


class NoServingVersion(Exception):
    pass


def route(model: MLModel, entity: str) -> Route:
    champion = model.production_version()
    if champion is None:
        raise NoServingVersion(f"{model.name} has no production version")
    return Route(version=champion, arm="champion")
