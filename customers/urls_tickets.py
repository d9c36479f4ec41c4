from django.urls import path

from customers import views

urlpatterns = [
    path("", views.ticket_queue, name="tickets"),
    path("new/", views.ticket_create, name="ticket-create"),
    path("<int:pk>/", views.ticket_detail, name="ticket-detail"),
    path("<int:pk>/reply/", views.ticket_reply, name="ticket-reply"),
    path("<int:pk>/status/", views.ticket_status, name="ticket-status"),
    path("<int:pk>/assign/", views.ticket_assign, name="ticket-assign"),
]
