"""Pages of the scores: RFM grid, deciles, Pareto, migration between runs, scoring runs."""

urlpatterns: list = []
