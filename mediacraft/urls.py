from django.contrib import admin
from django.urls import include, path

from mediacraft.api import build_api
from tasks import views
from tasks import pages
from users import pages as account_pages

api = build_api()

urlpatterns = [
    path("api/", api.urls),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("", pages.home, name="home"),
    path("new/<slug:kind>/", pages.task_new, name="task_new"),
    path("tasks/", pages.task_list, name="task_list"),
    path("tasks/bulk/<slug:action>/", pages.task_bulk, name="task_bulk"),
    path("tasks/<uuid:task_id>/", pages.task_detail, name="task_detail"),
    path("tasks/<uuid:task_id>/<slug:action>/", pages.task_action, name="task_action"),
    path("account/", account_pages.account, name="account"),
    path("account/claim/", account_pages.account_claim, name="account_claim"),
    path("account/login/", account_pages.account_login, name="account_login"),
    path("account/logout/", account_pages.account_logout, name="account_logout"),
    path("account/tokens/", account_pages.token_create, name="token_create"),
    path("account/tokens/<int:token_id>/revoke/", account_pages.token_revoke, name="token_revoke"),
]

handler400 = "tasks.pages.bad_request"
handler404 = "tasks.pages.page_not_found"
handler500 = "tasks.pages.server_error"
