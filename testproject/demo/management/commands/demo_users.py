from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERS = (("alice", "alice-demo-pw"), ("bob", "bob-demo-pw"))


class Command(BaseCommand):
    help = "Create (or reset the passwords of) the demo users and print their credentials."

    def handle(self, *args, **options):
        User = get_user_model()
        for username, password in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.save()
        self.stdout.write("Demo users (sign in at http://127.0.0.1:8000/):")
        for username, password in DEMO_USERS:
            self.stdout.write(f"  username: {username}   password: {password}")
