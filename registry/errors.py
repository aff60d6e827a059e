"""The registry's domain errors."""

from core.errors import DomainError


class GovernanceError(DomainError):
    """A governance rule (lifecycle, approvals, separation of duties, traffic) refused
    the action."""
