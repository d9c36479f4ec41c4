"""Demo accounts for `make run`: one user per role, with a known password."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from crm.models import UserProfile
from crm.roles import Role, assign_role


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role
    first_name: str
    last_name: str
    language: str


DEMO_USERS = [
    DemoUser("admin", Role.ADMIN, "花子", "管理", "ja"),
    DemoUser("marketer", Role.MARKETER, "Emma", "Marketing", "en"),
    DemoUser("sales", Role.SALES, "太郎", "営業", "ja"),
]


@transaction.atomic
def create_demo_users(*, password: str) -> list[DemoUser]:
    """Create the demo users that do not exist yet; return the ones created."""
    User = get_user_model()
    created = []
    for demo in DEMO_USERS:
        if User.objects.filter(username=demo.username).exists():
            continue
        user = User.objects.create_user(
            username=demo.username,
            email=f"{demo.username}@example.com",
            password=password,
            first_name=demo.first_name,
            last_name=demo.last_name,
        )
        assign_role(user, demo.role)
        # The profile was created with the user; show each demo user their own language.
        UserProfile.objects.filter(user=user).update(language=demo.language)
        created.append(demo)
    return created
