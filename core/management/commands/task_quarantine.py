from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.models import TaskDelivery
from core.quarantine import delivery_release


class Command(BaseCommand):
    help = (
        "List the task bodies quarantined after killing their worker (core.quarantine), "
        "or release one so that it runs again (docs/faults.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--release", metavar="KEY", help="delete the count of KEY (audited)")
        parser.add_argument("--note", default="", help="why it is released (audit trail)")

    def handle(self, *args: object, **options: str) -> None:
        if options["release"]:
            released = delivery_release(key=options["release"], note=options["note"])
            if released is None:
                raise CommandError(f"no crash count or quarantine under {options['release']!r}")
            self.stdout.write(f"released {released.key} ({released.label})")
            return
        for row in TaskDelivery.objects.filter(quarantined_at__isnull=False):
            self.stdout.write(f"{row.key}\t{row.label}\t{row.quarantined_at:%Y-%m-%d %H:%M}")
            self.stdout.write(f"\t{row.reason}")
