from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TorrentsConfig(AppConfig):
    name = "torrents"
    verbose_name = _("Torrents")
