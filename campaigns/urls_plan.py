"""Plan and Do: create and edit campaigns and automations, preview, test send, schedule,
watch the progress, pause, resume, cancel."""

urlpatterns: list = []
