import functools

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = _("Tasks")

    def ready(self):
        import redis.utils

        # redis-py 8 reads its own package metadata (a scan of sys.path, ~0.6 ms) for every new
        # connection; a work horse opens three.
        redis.utils.get_lib_version = functools.cache(redis.utils.get_lib_version)
