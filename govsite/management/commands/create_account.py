"""Create a person or a service account in a role; a service account's token is printed once.

A person's password is prompted for (twice, without echo) or read from the first line of
stdin with --password-stdin, so that it stays out of shell history and process lists;
it must pass AUTH_PASSWORD_VALIDATORS like a password set in the browser.
"""

import argparse
import getpass
import sys

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from knox.models import AuthToken

from core.audit import audit_record
from core.roles import ALL_ROLES, STAFF_ROLES


class Command(BaseCommand):
    help = (
        "Create a person (password prompted for, or --password-stdin) or a service account "
        "(--service) in a role."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ALL_ROLES)
        parser.add_argument("--email", default="")
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the person's password from the first line of stdin",
        )
        # Kept for call_command in scripts; on a command line it is visible to others.
        group.add_argument("--password", help=argparse.SUPPRESS)
        group.add_argument("--service", action="store_true", help="a token-only service account")

    @transaction.atomic
    def handle(self, *args, username, role, email, password, service, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            raise CommandError(f"user {username!r} already exists")
        user = User(username=username, email=email, is_staff=role in STAFF_ROLES)
        if service:
            user.set_unusable_password()
        else:
            if password is None:
                password = self._read_password(options.get("password_stdin", False))
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise CommandError("password refused: " + " ".join(exc.messages)) from None
            user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get(name=role))
        audit_record(
            action="account.created",
            obj=user,
            payload={"username": username, "role": role, "service": service},
        )
        self.stdout.write(self.style.SUCCESS(f"created {username} in role {role!r}"))
        if service:
            _, token = AuthToken.objects.create(user=user, expiry=None)
            self.stdout.write("token (shown once, store it now; only its hash is kept):")
            self.stdout.write(token)

    def _read_password(self, from_stdin: bool) -> str:
        if from_stdin:
            return sys.stdin.readline().rstrip("\r\n")
        if not sys.stdin.isatty():
            raise CommandError(
                "no terminal to prompt for the password: use --password-stdin or --service"
            )
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise CommandError("the passwords do not match")
        return password
