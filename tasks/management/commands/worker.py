"""`manage.py worker`: a MediaCraft worker, a forking RQ worker (tasks.worker.TaskWorker) on the
high, default and low queues. The options are rqworker's (--burst, --name, --max-jobs, ...)."""

from django_rq.management.commands import rqworker

from tasks.queues import QUEUE_NAMES


class Command(rqworker.Command):
    help = "Run a MediaCraft worker on the high, default and low queues (or those named)."
    # The web process checks the project. Here the checks would import its URLconf, and with it the
    # API's django-ninja and pydantic, into the memory each work horse's fork copies.
    requires_system_checks = []

    def add_arguments(self, parser):
        super().add_arguments(parser)
        # Unset: TaskWorker takes MEDIACRAFT_WORKER_TTL_SECONDS.
        parser.set_defaults(worker_ttl=None)

    def handle(self, *queues, **options):
        options["worker_class"] = options["worker_class"] or "tasks.worker.TaskWorker"
        return super().handle(*(queues or QUEUE_NAMES), **options)
