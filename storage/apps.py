from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StorageConfig(AppConfig):
    name = "storage"
    verbose_name = _("Files")

    def ready(self):
        from storage import signals  # noqa: F401  (removes files from disk with their rows)
