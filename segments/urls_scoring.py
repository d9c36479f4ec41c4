"""Pages of the scores: RFM grid, deciles, Pareto, migration between runs, scoring runs."""

from django.urls import path

from segments import scoring_views

urlpatterns = [
    path("scores/", scoring_views.rfm_overview, name="rfm"),
    path("scores/export/", scoring_views.export_scores, name="scores-export"),
    path("scores/runs/", scoring_views.run_list, name="scoring-runs"),
    path("scores/runs/start/", scoring_views.run_start, name="scoring-run-start"),
    path("scores/runs/<int:pk>/", scoring_views.run_detail, name="scoring-run"),
]
