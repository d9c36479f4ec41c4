"""Check and Act: the campaign list with goal attainment, the review page and its actions."""

from django.urls import path

from campaigns import views_review

urlpatterns: list = [
    path("", views_review.campaign_list, name="list"),
    path("<int:pk>/review/", views_review.campaign_review, name="review"),
    path("<int:pk>/review/csv/", views_review.campaign_review_csv, name="review-csv"),
    path("<int:pk>/notes/", views_review.campaign_notes, name="notes"),
    path("<int:pk>/send-winner/", views_review.campaign_send_winner, name="send-winner"),
    path(
        "<int:pk>/resend-non-openers/",
        views_review.campaign_resend_non_openers,
        name="resend-non-openers",
    ),
    path("<int:pk>/duplicate/", views_review.campaign_duplicate, name="duplicate"),
]
