from django.apps import AppConfig


class MediacraftConfig(AppConfig):
    name = "mediacraft"
    verbose_name = "MediaCraft"
