"""The one domain error every app raises, and what a refusal must leave behind.

A service refuses an action by raising a ``DomainError`` subclass with a message for
people, structured ``details`` for machines (``{"field": ..., "row": ...}``) and the
HTTP ``status`` the API answers with. The API's exception handler
(``core.api.exception_handler``) maps every one of them in one place; views and API
views do not catch them.
"""

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from django.db import transaction

from core.audit import audit_record

P = ParamSpec("P")
R = TypeVar("R")


class DomainError(Exception):
    """A rule refused the action; `status` is the HTTP status the API answers with.

    `audit` (keyword arguments of audit_record) and `persist` (a callable) describe
    what must be written even though the action's own transaction rolls back:
    integrity and permission failures are audited, expired approvals stay expired.
    """

    status = 400

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        status: int | None = None,
        audit: dict[str, Any] | None = None,
        persist: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.audit = audit
        self.persist = persist
        if status is not None:
            self.status = status


def records_failures(fn: Callable[P, R]) -> Callable[P, R]:
    """Outermost decorator of a service: after its transaction rolled back, write what a
    refusal must leave behind (an audit event, an expiry)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except DomainError as exc:
            with transaction.atomic():
                if exc.persist is not None:
                    exc.persist()
                if exc.audit is not None:
                    audit_record(**exc.audit)
            raise

    return wrapper
