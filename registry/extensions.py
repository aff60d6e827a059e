"""The registry's extension points: what it needs from the apps above it.

The registry sits below monitoring, explain, fairness and experiments, so it never
imports them. Where its governance needs their knowledge (a reference distribution
at registration, drift and fairness evidence for approvers, the fairness gate, the
entities a traffic change would move), it calls a slot defined here, and the app
that has the knowledge fills the slot from its ``AppConfig.ready``. See
docs/architecture.md.

Slots that the governance rules cannot do without (``reference_build``,
``recent_entities``) raise when no app filled them, so a missing registration fails
loudly instead of approving on less evidence. Evidence sections, gate checks and
approval hooks are lists that any number of apps extend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from core.audit import Actor
    from registry.models import MLModel, MLModelVersion

_T = TypeVar("_T")


class Reference(Protocol):
    """The reference distributions stored with a version: a file and a JSON summary."""

    def to_bytes(self) -> bytes: ...

    def summary(self) -> dict[str, Any]: ...


# (feature schema, evaluation arrays, scores) -> the reference stored with the version
ReferenceBuilder = Callable[[list[dict[str, Any]], dict[str, np.ndarray], np.ndarray], Reference]
# (model, since) -> the distinct entities seen in the log since then
RecentEntities = Callable[["MLModel", datetime], Iterable[str]]
# version -> a JSON-ready evidence section, or None when there is nothing to show
EvidenceSection = Callable[["MLModelVersion"], dict[str, Any] | None]
# version -> policy checks: [{"check": str, "passed": bool, "detail": str}, ...]
GateCheck = Callable[["MLModelVersion"], list[dict[str, Any]]]
# (version, actor) -> None; runs inside approval_request_create's transaction
ApprovalRequestedHook = Callable[["MLModelVersion", "Actor"], None]


@dataclass
class _Extensions:
    reference_builder: ReferenceBuilder | None = None
    recent_entities: RecentEntities | None = None
    evidence_sections: dict[str, EvidenceSection] = field(default_factory=dict)
    gate_checks: list[GateCheck] = field(default_factory=list)
    approval_requested: list[ApprovalRequestedHook] = field(default_factory=list)


_ext = _Extensions()


def provide_reference_builder(fn: ReferenceBuilder) -> None:
    _ext.reference_builder = fn


def provide_recent_entities(fn: RecentEntities) -> None:
    _ext.recent_entities = fn


def add_evidence_section(name: str, fn: EvidenceSection) -> None:
    _ext.evidence_sections[name] = fn


def add_gate_check(fn: GateCheck) -> None:
    if fn not in _ext.gate_checks:
        _ext.gate_checks.append(fn)


def on_approval_requested(fn: ApprovalRequestedHook) -> None:
    if fn not in _ext.approval_requested:
        _ext.approval_requested.append(fn)


def _required(value: _T | None, name: str) -> _T:
    if value is None:
        raise ImproperlyConfigured(f"no installed app provides the registry's {name}")
    return value


def reference_build(
    schema: list[dict[str, Any]], arrays: dict[str, np.ndarray], scores: np.ndarray
) -> Reference:
    return _required(_ext.reference_builder, "reference builder")(schema, arrays, scores)


def recent_entities(model: MLModel, since: datetime) -> Iterable[str]:
    return _required(_ext.recent_entities, "recent-entities reader")(model, since)


def evidence_section(name: str, version: MLModelVersion | None) -> dict[str, Any] | None:
    """The section ``name`` (``"drift"``, ``"fairness"``) of a version's evidence; None
    for no version or no data."""
    if version is None:
        return None
    return _required(_ext.evidence_sections.get(name), f"evidence section {name!r}")(version)


def gate_checks(version: MLModelVersion) -> list[dict[str, Any]]:
    return [check for fn in _ext.gate_checks for check in fn(version)]


def approval_requested(version: MLModelVersion, actor: Actor) -> None:
    for fn in _ext.approval_requested:
        fn(version, actor)
