from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.checkpoints import AuditChainBroken, audit_checkpoint_create, audit_restore_accept
from core.signing import (
    Checkpoint,
    key_generate,
    key_id,
    private_key_parse,
    public_key_text,
    signing_key,
)


class Command(BaseCommand):
    help = (
        "Verify the audit chain, sign a checkpoint of its head and write it to the "
        "external sinks (docs/governance.md); or manage the signing key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--full",
            action="store_true",
            help="verify the whole chain first (not from the newest checkpoint)",
        )
        parser.add_argument(
            "--after-restore",
            metavar="REASON",
            help="accept that the database was restored from a backup older than the newest "
            "checkpoints: sign a restore checkpoint and audit it with REASON",
        )
        parser.add_argument(
            "--public-key",
            action="store_true",
            help="print the public key of this host's signing key (for AUDIT_VERIFY_KEYS)",
        )
        parser.add_argument(
            "--generate-key",
            action="store_true",
            help="print a new private key for AUDIT_SIGNING_KEY and its public key",
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["generate_key"]:
            private = key_generate()
            public = private_key_parse(private, where="the new key").public_key()
            self.stdout.write(f"AUDIT_SIGNING_KEY={private}")
            self.stdout.write(f"AUDIT_VERIFY_KEYS={public_key_text(public)}")
            self.stdout.write(f"key id {key_id(public)}")
            return
        if options["public_key"]:
            public = signing_key().public_key()
            self.stdout.write(f"{public_key_text(public)}  # key {key_id(public)}")
            return
        checkpoint: Checkpoint | None
        try:
            if options["after_restore"]:
                checkpoint, lost = audit_restore_accept(reason=str(options["after_restore"]))
                self.stdout.write(
                    f"restore accepted: {len(lost)} checkpoint(s) beyond event "
                    f"{checkpoint.seq} superseded"
                )
            else:
                checkpoint = audit_checkpoint_create(full=bool(options["full"]), force=True)
        except AuditChainBroken as exc:
            raise CommandError(f"{exc}; no checkpoint signed") from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if checkpoint is None:  # not with force=True
            return
        self.stdout.write(checkpoint.line())
        self.stdout.write(self.style.SUCCESS(f"signed {checkpoint.label()}"))
