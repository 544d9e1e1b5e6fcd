from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.utils.functional import lazy
from django.views.generic.base import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from catalog import api as catalog_api
from identification import api as identification_api
from resight import api as resight_api
from resight import health, metrics, sign_in, views

router = DefaultRouter()
for prefix, viewset, basename in [*resight_api.ROUTES, *catalog_api.ROUTES, *identification_api.ROUTES]:
    router.register(prefix, viewset, basename=basename)

urlpatterns = [
    # Browsers ask for /favicon.ico whatever the page says (base.html links the SVG): the static file answers.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("favicon.ico"), permanent=True)),
    path("health/live/", health.live, name="health-live"),
    path("health/ready/", health.ready, name="health-ready"),
    path("metrics", metrics.metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/badge/", views.notification_badge, name="notification-badge"),
    path("notifications/read/", views.notification_read, name="notifications-read"),
    path("tokens/", views.tokens_page, name="tokens"),
    path("webhooks/", views.webhooks_page, name="webhooks"),
    path("webhooks/<int:pk>/delete/", views.webhook_delete, name="webhook-delete"),
    path("tokens/<str:token_key>/revoke/", views.token_revoke, name="token-revoke"),
    path("sharing/", views.sharing_page, name="sharing"),
    path("sharing/propose/", views.sharing_propose, name="sharing-propose"),
    re_path(
        r"^sharing/(?P<pk>[0-9]{1,18})/(?P<verb>accept|decline|revoke|terms)/$",
        views.sharing_settle,
        name="sharing-settle",
    ),
    # The API's route names (species-list, individual-detail, ...) live in their own namespace: the HTML pages
    # use the same names, and reverse() would otherwise hand the API root links to pages.
    path("api/", include((router.urls, "api"))),
    path("api/auth/token/", sign_in.TokenObtainView.as_view(), name="api-token"),
    path("api/auth/logout/", sign_in.LogoutView.as_view(), name="api-logout"),
    path("api/auth/logoutall/", sign_in.LogoutAllView.as_view(), name="api-logout-all"),
    path("api/auth/tokens/", sign_in.TokenViewSet.as_view({"get": "list"}), name="api-token-list"),
    path(
        "api/auth/tokens/<str:token_key>/",
        sign_in.TokenViewSet.as_view({"delete": "destroy"}),
        name="api-token-detail",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script from its own URL (?script=), not inline, so the
    # page runs under script-src 'self'.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("identification.urls")),
    path("", include("catalog.urls")),
]

# Unmatched API URLs answer JSON like the API's own 404s (resight.http.errors); pages keep the HTML page.
handler404 = "resight.http.errors.page_not_found"
