from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

from stores.models import StaffProfile


class Command(BaseCommand):
    help = "Create the demo administrator (DEMO_ADMIN_USERNAME / DEMO_ADMIN_PASSWORD) if missing, and print the login."

    def handle(self, *args, **options):
        username = settings.DEMO_ADMIN_USERNAME
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_superuser(username=username, password=settings.DEMO_ADMIN_PASSWORD)
            self.stdout.write(f"Created administrator {username}.")
        StaffProfile.objects.get_or_create(user=user, defaults={"scope": StaffProfile.Scope.HQ})
        self.stdout.write(
            self.style.SUCCESS(
                f"Log in at http://127.0.0.1:8000/admin/ as {username} / {settings.DEMO_ADMIN_PASSWORD} "
                "(other demo staff use the same password)."
            )
        )
