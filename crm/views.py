from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.generic import DetailView, ListView

from crm.access import RoleRequiredMixin, permission_required
from crm.forms import LanguageForm, PreferencesForm
from crm.health import run_checks
from crm.models import OutboxEmail, UserProfile
from crm.navigation import menu_for
from crm.preferences import remember_language, save_preferences


@permission_required()
def home(request):
    # The home page lists what the user's role opens; the apps add their own summaries.
    sections = [item for item in menu_for(request.user, request.path) if item["url"] != "/"]
    return render(request, "crm/home.html", {"sections": sections})


@never_cache
@require_GET
def healthz(request):
    """JSON reachability of database, broker, workers and beat; 503 if any is down.

    ``?check=database`` (repeatable) limits the checks, e.g. for a web container's probe
    that should not fail because the workers are restarting.
    """
    report = run_checks(request.GET.getlist("check") or None)
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


class OutboxListView(RoleRequiredMixin, ListView):
    permission_required = ("crm.view_outboxemail",)
    template_name = "crm/outbox_list.html"
    paginate_by = 25

    def get_queryset(self):
        queryset = OutboxEmail.objects.visible_to(self.request.user)
        query = self.request.GET.get("q", "").strip()
        if query:
            queryset = queryset.filter(to__icontains=query) | queryset.filter(
                subject__icontains=query
            )
        return queryset.only("id", "created_at", "to", "subject")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["q"] = self.request.GET.get("q", "")
        return context

    def get_template_names(self):
        # The search box asks htmx for the results only, as the user types.
        if self.request.htmx and not self.request.htmx.history_restore_request:
            return ["crm/_outbox_results.html"]
        return [self.template_name]


class OutboxDetailView(RoleRequiredMixin, DetailView):
    permission_required = ("crm.view_outboxemail",)
    template_name = "crm/outbox_detail.html"
    context_object_name = "email"

    def get_queryset(self):
        return OutboxEmail.objects.visible_to(self.request.user)


@permission_required("crm.view_outboxemail")
def outbox_html(request, pk: int):
    """The HTML part alone, for the sandboxed iframe of the detail page."""
    email = get_object_or_404(OutboxEmail.objects.visible_to(request.user), pk=pk)
    response = render(request, "crm/outbox_html.html", {"email": email})
    # Shown in an iframe of our own page only, with scripts disabled by the sandbox.
    response["X-Frame-Options"] = "SAMEORIGIN"
    response["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'"
    )
    return response


@permission_required()
def preferences(request):
    profile, _created = UserProfile.objects.get_or_create(user=request.user)
    form = PreferencesForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        save_preferences(profile=profile, **form.cleaned_data)
        response = HttpResponseRedirect(request.path)
        remember_language(response, profile.language)
        if profile.language:
            translation.activate(profile.language)  # confirm in the language just chosen
        messages.success(request, _("Your preferences were saved."))
        return response
    return render(request, "crm/preferences.html", {"form": form})


@require_POST
def set_language(request):
    """The language switcher: remembers the choice in a cookie, and in the profile if signed in."""
    form = LanguageForm(request.POST)
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/"
    response = HttpResponseRedirect(next_url)
    if form.is_valid():
        language = form.cleaned_data["language"]
        if request.user.is_authenticated:
            profile, _created = UserProfile.objects.get_or_create(user=request.user)
            save_preferences(profile=profile, language=language, time_zone=profile.time_zone)
        remember_language(response, language)
    return response
