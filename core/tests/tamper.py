"""What someone with write access to the database can do to the audit tables, in SQL.

Each helper is an attacker who knows the hash format (it is in the source): rewriting
an event and recomputing every later hash and the head, deleting the newest events with
the head, truncating or emptying the tables. The attacker can also delete the database's
copies of the checkpoints; what they cannot do is sign a new one.
"""

from django.db import connection

from core.models import AuditEvent

EVENTS = "registry_auditevent"
HEAD = "registry_auditchainhead"
CHECKPOINTS = "core_auditcheckpoint"


def _sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def edit(event_id: int, **columns: str) -> None:
    """Change text columns of one event, nothing else (careless tampering)."""
    for column, value in columns.items():
        _sql(f"UPDATE {EVENTS} SET {column} = %s WHERE id = %s", [value, event_id])


def rewrite(event_id: int, **columns: str) -> None:
    """Change an event and recompute its hash, every later hash and link, and the head:
    a chain that verifies on its own."""
    edit(event_id, **columns)
    prev = None
    for event in AuditEvent.objects.filter(pk__gte=event_id).order_by("id"):
        if prev is not None:
            event.prev_hash = prev
        event.row_hash = event.compute_hash()
        _sql(
            f"UPDATE {EVENTS} SET prev_hash = %s, row_hash = %s WHERE id = %s",
            [event.prev_hash, event.row_hash, event.pk],
        )
        prev = event.row_hash
    _sql(f"UPDATE {HEAD} SET last_hash = %s WHERE id = 1", [prev])


def drop_tail(count: int, *, head: str = "delete") -> None:
    """Delete the newest ``count`` events; then delete the head row (``delete``) or make
    it match the shortened chain (``fix``)."""
    newest = list(AuditEvent.objects.order_by("-id").values_list("pk", flat=True)[:count])
    _sql(f"DELETE FROM {EVENTS} WHERE id IN ({', '.join(['%s'] * len(newest))})", newest)
    if head == "delete":
        _sql(f"DELETE FROM {HEAD}")
    else:
        last = AuditEvent.objects.latest("id")
        _sql(
            f"UPDATE {HEAD} SET last_hash = %s, count = %s WHERE id = 1",
            [last.row_hash, AuditEvent.objects.count()],
        )


def delete(event_id: int) -> None:
    _sql(f"DELETE FROM {EVENTS} WHERE id = %s", [event_id])


def truncate(*, checkpoints: bool = True) -> None:
    """TRUNCATE the trail's tables (PostgreSQL; SQLite has no TRUNCATE)."""
    tables = [EVENTS, HEAD] + ([CHECKPOINTS] if checkpoints else [])
    # The test's own open transaction still has deferred foreign-key checks of the rows
    # it wrote, which TRUNCATE refuses to skip; an attacker's rows were committed long ago.
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    _sql(f"TRUNCATE {', '.join(tables)}")


def empty(*, checkpoints: bool = True) -> None:
    """DELETE every row of the trail's tables."""
    for table in [EVENTS, HEAD] + ([CHECKPOINTS] if checkpoints else []):
        _sql(f"DELETE FROM {table}")


def forget_checkpoints() -> None:
    """Delete the database's copies of the checkpoints."""
    _sql(f"DELETE FROM {CHECKPOINTS}")
