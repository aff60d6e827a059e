"""The management commands as a test calls them."""

from io import StringIO

from django.core.management import call_command


def verify(*args) -> str:
    """manage.py audit_verify ARGS; its output (CommandError propagates)."""
    out, err = StringIO(), StringIO()
    call_command("audit_verify", *[str(a) for a in args], stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def checkpoint(*args) -> str:
    out = StringIO()
    call_command("audit_checkpoint", *[str(a) for a in args], stdout=out)
    return out.getvalue()
