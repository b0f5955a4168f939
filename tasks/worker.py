"""The RQ worker class MediaCraft runs: a forking worker that knows about tasks."""

import logging
import os
import signal

from rq.worker import Worker

log = logging.getLogger(__name__)


class TaskWorker(Worker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        preload()

    def execute_job(self, job, queue):
        from django.db import connections

        # A connection opened by a callback in this process must not be shared with the fork.
        connections.close_all()
        return super().execute_job(job, queue)

    def request_force_stop(self, signum, frame):
        """Cold shutdown (serve stopping, a restart): RQ kills the horse. The task was not at fault,
        so it goes back to be run again, its attempt refunded, instead of ending as lost."""
        job_id = self.get_current_job_id() if self.horse_pid else None
        try:
            super().request_force_stop(signum, frame)
        except SystemExit:
            if job_id:
                self.settle_interrupted(job_id)
            raise

    def settle_interrupted(self, task_id):
        from tasks import services

        settle_gone_horse(task_id, lambda: services.task_requeue_interrupted(task_id=task_id),
                          "interrupted by a shutdown")

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):
        """The horse died without being asked to (OOM, kill -9, its watchdog): kill what is left
        of its process group, then settle the task at once instead of waiting for the reconciler."""
        from tasks import services

        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        if retpid:
            try:
                os.killpg(retpid, signal.SIGKILL)
            except OSError:
                pass
        settle_gone_horse(job.id, lambda: services.task_mark_lost(
            task_id=job.id, detail=f"work horse exited with status {ret_val}"), "after its work horse died")


def settle_gone_horse(task_id, otherwise, why):
    """Settle a task still running whose horse is gone: cancelled (its leftovers removed) if that
    was asked for, else `otherwise()`. Runs in the worker, outside any job: its own connection."""
    from django.db import close_old_connections, connections

    from tasks import jobs
    from tasks.models import Task

    close_old_connections()
    try:
        task = Task.objects.filter(pk=task_id).only("status", "cancel_requested_at").first()
        if task is not None and task.status == Task.Status.RUNNING:
            if task.cancel_requested_at:
                jobs.finish_cancelled(task_id)
            else:
                otherwise()
    except Exception:
        log.exception("could not settle task %s %s", task_id, why)
    finally:
        connections.close_all()


def preload():
    """Import once, before any fork, what every work horse needs: each horse would otherwise import
    it again (psutil, the channel layer, the ORM's SQL compiler, the job's own modules)."""
    import channels_redis.core  # noqa: F401
    import django.db.models.sql.compiler  # noqa: F401
    import psutil  # noqa: F401

    from tasks import jobs, runtime  # noqa: F401
    from tasks.processors import registry

    registry()
