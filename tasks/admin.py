from django.contrib import admin, messages
from django.contrib.admin import actions as admin_actions
from django.http import HttpResponseRedirect
from django.urls import reverse
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
    actions = ["cancel_tasks", "retry_tasks", "delete_selected"]
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

    # Deleting goes through services.task_delete, as in the API: only finished tasks, and their
    # folders go too. An unfinished one is refused rather than cancelled on the way: a running
    # task's cancel ends asynchronously (its horse is stopped, then cleans up), and an admin who
    # meant to tidy the list should not stop someone's job by surprise; "Cancel" is one click away.

    @admin.action(description=_("Delete selected tasks"), permissions=["delete"])
    def delete_selected(self, request, queryset):  # in place of the site's action of that name
        unfinished = queryset.exclude(status__in=Task.TERMINAL).count()
        if unfinished:
            self.message_user(request, self.unfinished_message(unfinished), level=messages.ERROR)
            return None
        return admin_actions.delete_selected(self, request, queryset)  # Django's confirmation page, then delete_queryset

    def delete_queryset(self, request, queryset):
        for task in queryset:
            self.delete_model(request, task)

    def delete_model(self, request, obj):
        try:
            services.task_delete(task=obj)
        except ApiError:  # retried since the confirmation page was shown
            self.message_user(request, self.unfinished_message(1), level=messages.ERROR)

    def delete_view(self, request, object_id, extra_context=None):
        task = self.get_object(request, object_id)
        if task is not None and task.status not in Task.TERMINAL:
            self.message_user(request, self.unfinished_message(1), level=messages.ERROR)
            return HttpResponseRedirect(reverse("admin:tasks_task_change", args=[task.pk]))
        return super().delete_view(request, object_id, extra_context)

    @staticmethod
    def unfinished_message(count):
        return ngettext("%d task has not finished: cancel it first, then delete it.",
                        "%d tasks have not finished: cancel them first, then delete them.", count) % count

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
