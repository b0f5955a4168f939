from django.contrib import admin
from django.urls import include, path

from mediacraft.api import build_api
from tasks import views

api = build_api()

urlpatterns = [
    path("api/", api.urls),
    path("healthz", views.healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("", views.home, name="home"),
]
