from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from strm import services
from strm.models import StrmFileState, StrmProfile, SyncType
from tasks.errors import ApiError


class StrmProfileForm(forms.ModelForm):
    source_password = forms.CharField(
        label=_("WebDAV password"), required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Stored encrypted and never shown again. Leave empty to keep the current password."),
    )
    clear_password = forms.BooleanField(label=_("Remove the stored password"), required=False)

    class Meta:
        model = StrmProfile
        fields = "__all__"

    def _post_clean(self):
        # Before the model's own validation, which builds URLs with the password.
        if self.cleaned_data.get("clear_password"):
            self.instance.set_password("")
        elif self.cleaned_data.get("source_password"):
            self.instance.set_password(self.cleaned_data["source_password"])
        super()._post_clean()


@admin.register(StrmProfile)
class StrmProfileAdmin(admin.ModelAdmin):
    form = StrmProfileForm
    list_display = ("name", "enabled", "source_type", "target_path", "schedule", "next_run_at", "last_success_at",
                    "running_task")
    list_filter = ("enabled", "source_type", "schedule")
    search_fields = ("name", "description", "source_url", "source_path", "target_path")
    readonly_fields = ("next_run_at", "running_task", "last_success_at", "last_sync_type", "last_entry_count",
                       "created_at", "updated_at")
    actions = ["start_full", "start_incremental"]
    fieldsets = (
        (None, {"fields": ("name", "description", "enabled")}),
        (_("Source"), {"fields": ("source_type", "source_url", "source_username", "source_password",
                                  "clear_password", "source_path")}),
        (_("Library"), {"fields": ("target_path", "media_extensions", "sidecar_extensions", "sidecar_max_mb",
                                   "ignore_patterns", "delete_orphans")}),
        (_(".strm contents"), {"fields": ("url_base", "url_template", "url_credentials")}),
        (_("Running"), {"fields": ("listing_concurrency", "timeout", "schedule", "schedule_interval_minutes",
                                   "schedule_cron", "schedule_owner", "next_run_at")}),
        (_("State"), {"fields": ("running_task", "last_success_at", "last_sync_type", "last_entry_count",
                                 "created_at", "updated_at")}),
    )

    def get_changeform_initial_data(self, request):
        return {**super().get_changeform_initial_data(request), "schedule_owner": request.user.pk}

    def _start(self, request, queryset, sync_type):
        for profile in queryset:
            try:
                task = services.strm_sync_submit(owner=request.user, profile=profile, sync_type=sync_type)
            except ApiError as exc:
                self.message_user(request, f"{profile.name}: {exc.message}", level=messages.WARNING)
            else:
                self.message_user(request, _("%(profile)s: sync %(task)s started.") % {"profile": profile.name,
                                                                                      "task": task.pk})

    @admin.action(description=_("Start a full sync"))
    def start_full(self, request, queryset):
        self._start(request, queryset, SyncType.FULL)

    @admin.action(description=_("Start an incremental sync"))
    def start_incremental(self, request, queryset):
        self._start(request, queryset, SyncType.INCREMENTAL)


@admin.register(StrmFileState)
class StrmFileStateAdmin(admin.ModelAdmin):
    list_display = ("path", "output", "profile", "size", "etag")
    list_filter = ("profile",)
    search_fields = ("path", "output")
    list_select_related = ("profile",)
    readonly_fields = ("profile", "path", "output", "size", "mtime_ns", "etag")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
