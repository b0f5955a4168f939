from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from torrents import services
from torrents.models import PasswordUnreadable, QbittorrentConnection
from torrents.qbittorrent import QbtError


class QbittorrentConnectionForm(forms.ModelForm):
    password = forms.CharField(
        label=_("password"), required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Stored encrypted and never shown again. Leave empty to keep the current password."),
    )
    clear_password = forms.BooleanField(label=_("Remove the stored password"), required=False)

    class Meta:
        model = QbittorrentConnection
        fields = ("name", "description", "enabled", "url", "username", "verify_tls", "probe_path")

    def save(self, commit=True):
        connection = super().save(commit=False)
        if self.cleaned_data.get("clear_password"):
            connection.set_password("")
        elif self.cleaned_data.get("password"):
            connection.set_password(self.cleaned_data["password"])
        if commit:
            connection.save()
        return connection


@admin.register(QbittorrentConnection)
class QbittorrentConnectionAdmin(admin.ModelAdmin):
    form = QbittorrentConnectionForm
    list_display = ("name", "enabled", "url", "username", "stored_password", "login_failed_at")
    list_filter = ("enabled",)
    search_fields = ("name", "description", "url")
    readonly_fields = ("stored_password", "login_failed_at", "created_at", "updated_at")
    actions = ["test_connection"]
    fieldsets = (
        (None, {"fields": ("name", "description", "enabled")}),
        (_("Web UI"), {"fields": ("url", "username", "password", "clear_password", "stored_password", "verify_tls")}),
        (_("Calibration"), {"fields": ("probe_path",)}),
        (_("State"), {"fields": ("login_failed_at", "created_at", "updated_at")}),
    )

    @admin.display(description=_("password stored"), boolean=True)
    def stored_password(self, obj):
        return obj.has_password

    @admin.action(description=_("Test the connection (log in and read the version)"))
    def test_connection(self, request, queryset):
        for connection in queryset:
            try:
                found = services.connection_test(connection=connection)
            except PasswordUnreadable:
                self.message_user(request, _("%(name)s: the stored password cannot be decrypted with this site's "
                                             "secret key; enter it again.") % {"name": connection.name},
                                  level=messages.ERROR)
            except QbtError as exc:
                self.message_user(request, f"{connection.name}: {_connection_error(connection, exc)} ({exc.detail})",
                                  level=messages.ERROR)
            else:
                self.message_user(request, _("%(name)s: qBittorrent %(version)s (Web API %(api)s), %(count)s torrents, "
                                             "default save path %(path)s.") % {
                    "name": connection.name, "version": found["version"], "api": found["api_version"],
                    "count": found["torrents"], "path": found["default_save_path"]})


def _connection_error(connection, exc):
    from tasks.messages import ERRORS, render

    return render(ERRORS, exc.code, {"name": connection.name, "reason": exc.reason, "status": exc.status or "",
                                     "request": exc.request})
