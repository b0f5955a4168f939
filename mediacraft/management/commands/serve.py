import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mediacraft.launcher import WEB_DB_POOL, Launcher, LauncherError


class Command(BaseCommand):
    help = ("Run MediaCraft in the foreground: embedded Redis (unless MEDIACRAFT_REDIS_URL is set), "
            "MEDIACRAFT_WORKERS RQ workers, aria2c for downloads (unless MEDIACRAFT_ARIA2_URL is set), "
            "the task scheduler and daphne on MEDIACRAFT_BIND.")

    def handle(self, *args, **options):
        self.check_migrations()
        try:
            launcher = Launcher(
                base_dir=settings.BASE_DIR,
                var_dir=settings.VAR_DIR,
                workers=settings.MEDIACRAFT_WORKERS,
                bind=settings.MEDIACRAFT_BIND,
                redis_url=os.environ.get("MEDIACRAFT_REDIS_URL") or None,
                aria2_url=settings.MEDIACRAFT_ARIA2_URL or None,
                aria2_secret=settings.MEDIACRAFT_ARIA2_SECRET,
                stdout=self.stdout,
                # Settings has already refused a bad value.
                web_db_pool=settings.MEDIACRAFT_DB_POOL if os.environ.get("MEDIACRAFT_DB_POOL") else WEB_DB_POOL,
                log_format=settings.LOG_FORMAT,
            )
            launcher.run()
        except LauncherError as exc:
            raise CommandError(str(exc)) from None
