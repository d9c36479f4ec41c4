from segments import urls_scoring, urls_segments

app_name = "segments"
urlpatterns = [*urls_scoring.urlpatterns, *urls_segments.urlpatterns]
