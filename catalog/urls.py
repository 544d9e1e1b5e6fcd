from django.urls import path

from catalog import upload_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("projects/<int:pk>/", views.project_detail, name="project-detail"),
    path("projects/<int:pk>/population/", views.population, name="population"),
    path("projects/<int:pk>/population/mark.inp", views.population_mark, name="population-mark"),
    path("projects/<int:pk>/export/dwca.zip", views.project_dwca, name="project-dwca"),
    path(
        "projects/<int:pk>/export/wildlife-datasets.zip",
        views.project_wildlife_datasets,
        name="project-wildlife-datasets",
    ),
    path("projects/<int:pk>/export/coco.zip", views.project_coco, name="project-coco"),
    path("projects/<int:pk>/export/camtrap-dp.zip", views.project_camtrap_dp, name="project-camtrap-dp"),
    path("species/", views.species_list, name="species-list"),
    path("individuals/", views.individual_list, name="individual-list"),
    path("individuals/<int:pk>/", views.individual_detail, name="individual-detail"),
    path("individuals/<int:pk>/gallery/", views.individual_gallery, name="individual-gallery"),
    path("sightings/", views.sighting_list, name="sighting-list"),
    path("sightings/new/", views.sighting_create, name="sighting-create"),
    path("sightings/<int:pk>/", views.sighting_detail, name="sighting-detail"),
    path("sightings/<int:pk>/annotations/", views.annotation_create, name="annotation-create"),
    path("uploads/", upload_views.upload_list, name="upload-list"),
    path("uploads/<int:pk>/", upload_views.upload_detail, name="upload-detail"),
    path("uploads/<int:pk>/photos/", upload_views.upload_photos, name="upload-photos"),
    path("uploads/<int:pk>/csv/", upload_views.upload_csv, name="upload-csv"),
    path("uploads/<int:pk>/check/", upload_views.upload_step, {"step": "check"}, name="upload-check"),
    path("uploads/<int:pk>/import/", upload_views.upload_step, {"step": "import"}, name="upload-import"),
    path("media/<int:pk>/<str:variant>/", views.media_file, name="media-file"),
    path("annotations/<int:pk>/crop/", views.annotation_crop, name="annotation-crop"),
]
