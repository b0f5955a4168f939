from django.contrib import admin

from users.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "last_used_at")
    search_fields = ("prefix", "name", "user__username")
    readonly_fields = ("prefix", "digest", "created_at", "last_used_at")
