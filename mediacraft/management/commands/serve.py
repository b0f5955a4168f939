import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mediacraft.launcher import WEB_DB_POOL, Launcher, LauncherError


class Command(BaseCommand):
    help = ("Run MediaCraft in the foreground: embedded Redis (unless MEDIACRAFT_REDIS_URL is set), "
            "MEDIACRAFT_WORKERS RQ workers, aria2c for downloads (unless MEDIACRAFT_ARIA2_URL is set), "
            "the task scheduler and daphne on MEDIACRAFT_BIND.")

    # Run in handle(), once the database is known to work: a check that reads it (JSONField's)
    # would otherwise greet a bad database with a traceback.
    requires_system_checks = []

    def handle(self, *args, **options):
        self.check_database()
        self.check()
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

    def check_database(self):
        """Refuse to start on a database it cannot use, or one not migrated: the scheduler and
        workers would fail every few seconds, each time with a traceback."""
        from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
        from django.db.migrations.executor import MigrationExecutor

        try:
            executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except DatabaseError as exc:
            where = "DATABASE_URL" if settings.DATABASE_URL else \
                f"{settings.DATABASES['default']['NAME']}, under MEDIACRAFT_VAR_DIR or at MEDIACRAFT_SQLITE_PATH"
            raise CommandError(f"Cannot use the database ({where}): {' '.join(str(exc).split())}") from None
        finally:
            connections.close_all()
        if pending:
            raise CommandError(f"The database lacks {len(pending)} migration(s): run `manage.py migrate` first "
                               f"(`make run` does it).")
