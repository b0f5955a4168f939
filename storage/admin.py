from django.contrib import admin

from storage.models import StoredFile


@admin.register(StoredFile)
class StoredFileAdmin(admin.ModelAdmin):
    list_display = ("original_name", "owner", "role", "task", "size", "created_at", "expires_at")
    list_filter = ("role", "created_at")
    search_fields = ("original_name", "owner__username", "sha256", "task__id")
    readonly_fields = [f.name for f in StoredFile._meta.fields]

    def has_add_permission(self, request):
        return False
