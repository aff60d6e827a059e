"""Create a person or a service account in a role; a service account's token is printed once."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from knox.models import AuthToken

from core.audit import audit_record
from core.roles import ALL_ROLES, STAFF_ROLES


class Command(BaseCommand):
    help = "Create a user (with --password) or a service account (with --service) in a role."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ALL_ROLES)
        parser.add_argument("--email", default="")
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--password", help="password for a person's login")
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
