from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from crm.models import OutboxEmail
from crm.roles import user_roles


class TokenRequestSerializer(serializers.Serializer):
    # Not trimmed: credentials are compared as typed (a stray space fails with a 401).
    username = serializers.CharField(label=_("username"), max_length=150, trim_whitespace=False)
    password = serializers.CharField(
        label=_("password"), max_length=128, style={"input_type": "password"}, trim_whitespace=False
    )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)


class MeSerializer(serializers.ModelSerializer):
    roles = serializers.SerializerMethodField()
    language = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "first_name", "last_name", "roles", "language"]

    def get_roles(self, user) -> list[str]:
        return [role.value for role in user_roles(user)]

    def get_language(self, user) -> str:
        profile = getattr(user, "profile", None)
        return profile.language if profile else ""


class OutboxEmailSerializer(serializers.ModelSerializer):
    class Meta:
        model = OutboxEmail
        fields = [
            "id",
            "created_at",
            "from_email",
            "to",
            "cc",
            "bcc",
            "subject",
            "body",
            "html_body",
            "headers",
        ]
