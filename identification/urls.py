from django.urls import path

from identification.curation import views as curation
from identification.matching import views as matching
from identification.registry import views as registry

urlpatterns = [
    path("annotations/<int:pk>/match/", matching.match_start, name="match-start"),
    path("match-jobs/<int:pk>/", curation.match_job, name="match-job"),
    path("match-jobs/<int:pk>/decide/", curation.match_decide, name="match-decide"),
    path("match-jobs/<int:pk>/widen/", matching.match_widen, name="match-widen"),
    path("match-jobs/<int:pk>/rerank/", curation.match_rerank, name="match-rerank"),
    path("review/", curation.review_next, name="review-next"),
    path("models/", registry.model_registry, name="model-registry"),
    path("models/map.svg", registry.model_map, name="model-map"),
    path("models/train/", registry.model_train, name="model-train"),
    path("models/adopt/", registry.model_adopt, name="model-adopt"),
    path("models/<int:pk>/activate/", registry.model_activate, name="model-activate"),
    path("individuals/<int:pk>/merge/", curation.individual_merge, name="individual-merge"),
    path("individuals/<int:pk>/split/", curation.individual_split, name="individual-split"),
    path("individuals/<int:pk>/identity-changes/", curation.identity_changes, name="identity-changes"),
    path("identity-changes/<int:pk>/undo/", curation.identity_change_undo, name="identity-change-undo"),
]
