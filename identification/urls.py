from django.urls import path

from identification import registry_views, views

urlpatterns = [
    path("annotations/<int:pk>/match/", views.match_start, name="match-start"),
    path("match-jobs/<int:pk>/", views.match_job, name="match-job"),
    path("match-jobs/<int:pk>/decide/", views.match_decide, name="match-decide"),
    path("review/", views.review_next, name="review-next"),
    path("models/", registry_views.model_registry, name="model-registry"),
    path("models/map.svg", registry_views.model_map, name="model-map"),
    path("models/train/", registry_views.model_train, name="model-train"),
    path("models/<int:pk>/activate/", registry_views.model_activate, name="model-activate"),
    path("individuals/<int:pk>/merge/", views.individual_merge, name="individual-merge"),
    path("individuals/<int:pk>/split/", views.individual_split, name="individual-split"),
    path("individuals/<int:pk>/identity-changes/", views.identity_changes, name="identity-changes"),
    path("identity-changes/<int:pk>/undo/", views.identity_change_undo, name="identity-change-undo"),
]
