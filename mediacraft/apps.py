from django.apps import AppConfig


class MediacraftConfig(AppConfig):
    name = "mediacraft"
    verbose_name = "MediaCraft"

    def ready(self):
        from mediacraft.logs import install_record_factory

        install_record_factory()
