from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.audit import audit_verify


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain against the signed checkpoints (the files "
        "given, the local file sink, the database's copies); exits non-zero naming the "
        "first broken event."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--checkpoints",
            action="append",
            default=[],
            metavar="FILE",
            type=Path,
            help="checkpoints from an external sink (JSON lines, or a syslog file holding "
            "them); may be repeated",
        )
        parser.add_argument(
            "--incremental",
            action="store_true",
            help="start at the newest checkpoint instead of walking the whole chain "
            "(what the audit page does)",
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="walk the whole chain and check every checkpoint (the default)",
        )

    def handle(self, *args, **options):
        files = options["checkpoints"]
        for path in files:
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
        if options["incremental"] and options["full"]:
            raise CommandError("--incremental and --full exclude each other")
        report = audit_verify(full=not options["incremental"], checkpoints=files)
        for note in report.notes:
            self.stderr.write(f"note: {note}")
        if not report.ok:
            where = f" at event #{report.broken_id}" if report.broken_id else ""
            raise CommandError(
                f"audit chain broken{where}: {report.reason} "
                f"({report.checked} events verified before it)"
            )
        if files and not report.given:
            raise CommandError(
                "no checkpoint in the given files is signed by a key this host knows "
                "(AUDIT_SIGNING_KEY, AUDIT_VERIFY_KEYS)"
            )
        self.stdout.write(self.style.SUCCESS(_summary(report)))


def _summary(report) -> str:
    how = "whole chain" if report.full else f"from {report.anchor.label()}"
    text = f"audit chain intact: {report.position.seq} events ({report.checked} checked, {how})"
    if report.latest is not None:
        text += f"; matches {report.latest.label()}"
    else:
        text += "; no signed checkpoint found (only the chain's own consistency was checked)"
    return text
