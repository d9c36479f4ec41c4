from django.conf import settings

from crm.navigation import menu_for
from crm.roles import user_roles


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"main_menu": [], "user_roles": [], "CURRENCY": settings.CURRENCY}
    return {
        "main_menu": menu_for(user, request.path),
        "user_roles": user_roles(user),
        "CURRENCY": settings.CURRENCY,
    }
