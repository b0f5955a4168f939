from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StrmConfig(AppConfig):
    name = "strm"
    verbose_name = _("STRM library sync")
