"""The marketers' campaign pages under /campaigns/: planning and sending (urls_plan) and the
PDCA review with its actions (urls_review)."""

from campaigns import urls_plan, urls_review

app_name = "campaigns"

urlpatterns = urls_plan.urlpatterns + urls_review.urlpatterns
