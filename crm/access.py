"""One way to check access, for pages and API alike.

Every page declares the permissions it needs (``permission_required``), every API view
either declares them (``required_permissions``) or gets them from its model like Django's
model permissions (view for reads, add/change/delete for writes). Anonymous visitors are sent
to the login page (pages) or get 401 (API); signed-in users without the permission get 403.

The few routes open to anonymous visitors are listed in ``PUBLIC_URL_NAMES``; a test walks
every URL pattern and fails if anything else answers an anonymous request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

# URL names that answer anonymous requests, and why.
PUBLIC_URL_NAMES = {
    "login",  # signing in
    "password_reset",  # forgotten password: the reset flow is by e-mail
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "logout",  # harmless when signed out; POST only
    "set_language",  # the login page has the language switcher
    "healthz",  # load balancers and container health checks
    "api-token",  # API clients exchange credentials for a token
    "api-schema",  # the OpenAPI description is public documentation
    "api-docs",
    "tracking-open",  # e-mail recipients: open pixel, click redirect, unsubscribe (token)
    "tracking-click",
    "unsubscribe",
    "esp-tracking-webhook",  # ESPs report bounces; authenticated by ANYMAIL_WEBHOOK_SECRET
}


def has_permissions(user, perms: Iterable[str]) -> bool:
    """True if ``user`` is signed in, active and holds every permission in ``perms``."""
    return bool(user and user.is_authenticated and user.is_active and user.has_perms(list(perms)))


class RoleRequiredMixin(PermissionRequiredMixin):
    """For class-based pages: set ``permission_required`` (an empty tuple: any signed-in user)."""

    def has_permission(self) -> bool:
        return has_permissions(self.request.user, self.get_permission_required())

    def handle_no_permission(self):
        if self.request.user.is_authenticated:
            raise PermissionDenied
        return redirect_to_login(self.request.get_full_path())


def permission_required(*perms: str) -> Callable:
    """For function pages: ``@permission_required("app.view_model")``; no argument: signed in."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_permissions(request.user, perms):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


class HasRolePermission(BasePermission):
    """The default permission of every API view.

    ``required_permissions`` on the view: a tuple of permissions for every method, or a dict
    from HTTP method to tuple; an empty tuple means any signed-in user. Without it, the
    model's permissions apply: ``view`` for reads, ``add``/``change``/``delete`` for writes.
    """

    _model_perm_for_method = {
        "GET": "view",
        "HEAD": "view",
        "OPTIONS": "view",
        "POST": "add",
        "PUT": "change",
        "PATCH": "change",
        "DELETE": "delete",
    }

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return has_permissions(request.user, self.required(request, view))

    def required(self, request, view) -> tuple[str, ...]:
        declared = getattr(view, "required_permissions", None)
        if isinstance(declared, dict):
            return tuple(declared.get(request.method, declared.get("*", ())))
        if declared is not None:
            return tuple(declared)
        queryset = getattr(view, "queryset", None)
        if queryset is None and hasattr(view, "get_queryset"):
            queryset = view.get_queryset()
        if queryset is None:
            raise ImproperlyConfigured(
                f"{view.__class__.__name__} has neither required_permissions nor a queryset."
            )
        opts = queryset.model._meta
        action = self._model_perm_for_method.get(request.method, "change")
        perms = [f"{opts.app_label}.{action}_{opts.model_name}"]
        if request.method not in SAFE_METHODS:
            perms.append(f"{opts.app_label}.view_{opts.model_name}")
        return tuple(perms)
