from django.urls import path

from identification import views

urlpatterns = [
    path("annotations/<int:pk>/match/", views.match_start, name="match-start"),
    path("match-jobs/<int:pk>/", views.match_job, name="match-job"),
    path("match-jobs/<int:pk>/decide/", views.match_decide, name="match-decide"),
    path("review/", views.review_next, name="review-next"),
]
