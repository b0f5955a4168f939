from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _, ngettext

from tasks import services
from tasks.errors import ApiError
from tasks.models import CommandTemplate, Task, search_form


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "title", "owner", "status", "stage", "progress", "attempts", "priority", "created_at")
    list_filter = ("status", "kind", "priority", "created_at")
    search_fields = ("id", "title", "owner__username", "worker_name", "error_code")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)
    actions = ["cancel_tasks", "retry_tasks"]
    fields = (
        "id", "owner", "kind", "title", "status", "stage", "progress", "message_code", "message_params", "stats",
        "params", "result", "error_code", "error_params", "error_detail", "timeline", "priority", "attempts",
        "max_attempts", "timeout", "worker_name", "created_at", "queued_at", "started_at", "finished_at",
        "expires_at", "retry_at", "heartbeat_at", "cancel_requested_at",
    )

    def get_readonly_fields(self, request, obj=None):
        return self.fields  # state changes only through the actions, i.e. the services

    def get_search_results(self, request, queryset, search_term):
        # Titles also match in their search form, as on the pages (any case, any width).
        results, duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            results = results | queryset.filter(search_title__contains=search_form(search_term.strip()))
        return results, duplicates

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Cancel selected tasks"))
    def cancel_tasks(self, request, queryset):
        done = 0
        for task in queryset.exclude(status__in=Task.TERMINAL):
            services.task_cancel(task=task)
            done += 1
        self.message_user(request, ngettext("%d task cancelled.", "%d tasks cancelled.", done) % done)

    @admin.action(description=_("Retry selected tasks"))
    def retry_tasks(self, request, queryset):
        done = 0
        for task in queryset.filter(status__in=Task.RETRYABLE_BY_USER):
            try:
                services.task_retry(task=task)
                done += 1
            except ApiError as exc:
                self.message_user(request, f"{task.pk}: {exc.message}", level=messages.WARNING)
        self.message_user(request, ngettext("%d task queued again.", "%d tasks queued again.", done) % done)


@admin.register(CommandTemplate)
class CommandTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "enabled", "default_timeout", "created_at")
    list_filter = ("enabled",)
    search_fields = ("name", "description")
