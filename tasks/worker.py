"""The RQ worker class MediaCraft runs: a forking worker that knows about tasks."""

import dataclasses
import functools
import gc
import json
import logging
import os
import signal
from contextlib import nullcontext

from rq.worker import Worker

from mediacraft.logs import set_process_task

log = logging.getLogger(__name__)


class TaskWorker(Worker):
    def __init__(self, *args, **kwargs):
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        if any(db.get("OPTIONS", {}).get("pool") for db in settings.DATABASES.values()):
            # The horse would inherit the pool's open connections, shared with this process.
            raise ImproperlyConfigured("A worker forks and must not pool database connections: unset "
                                       "MEDIACRAFT_DB_POOL for it (it is meant for the web process).")
        kwargs["worker_ttl"] = kwargs.get("worker_ttl") or settings.MEDIACRAFT_WORKER_TTL_SECONDS
        super().__init__(*args, **kwargs)
        self.queue_class = tagging(self.queue_class)
        # Busy, it checks in as often as idle (RQ's default: every 30 s).
        self.job_monitoring_interval = self.dequeue_timeout
        preload()

    # RQ's idle worker blocks for its TTL less 15 s between check-ins and keeps its key a minute
    # past the TTL: with the default 420 s a worker killed with kill -9 stays listed for up to 8
    # minutes. Ours checks in every third of its TTL (a heartbeat and a blocking pop on its
    # queues: 20 s by default, a few commands, nothing for Redis) and its key lives exactly the
    # TTL, so it drops out after two missed check-ins.

    @property
    def dequeue_timeout(self):
        return max(1, self.worker_ttl // 3)

    def heartbeat(self, timeout=None, pipeline=None):
        from rq import worker_registration

        timeout = min(timeout or self.worker_ttl, self.worker_ttl)
        with self.connection.pipeline() if pipeline is None else nullcontext(pipeline) as pipe:
            super().heartbeat(timeout, pipeline=pipe)
            # Listed again each time: a worker stalled past its TTL (a loaded machine) loses its
            # place in RQ's list of workers to the first reader that finds its key gone.
            worker_registration.register(self, pipe)
            if pipeline is None:
                pipe.execute()

    def execute_job(self, job, queue):
        # This process keeps its database connection warm across jobs (the horse sets it aside),
        # so it does a task's two status changes where they cost least: running before the
        # fork, completed after it. A horse that runs a short task then opens no connection.
        self.handoff = job.handoff = prepare_run(job, self.name)
        try:
            return super().execute_job(job, queue)
        finally:
            self.handoff = None
            if job.handoff is not None:
                settle_success(job.handoff)
                job.handoff.close()
            set_process_task(None)  # its lines are the task's from its dequeue (tagging) to here

    def main_work_horse(self, job, queue):
        from tasks.queues import RUN_TASK

        if job.func_name == RUN_TASK:  # as its worker already is (tagging); for the horse's whole life
            set_process_task(job.id)
        self.inherited_connections = set_aside_connections()
        super().main_work_horse(job, queue)

    def fork_work_horse(self, job, queue):
        # The horse's collector must not walk (and so copy, page by page) what it shares with
        # the worker; the worker collects as before once the fork is done (the horse never returns).
        gc.freeze()
        try:
            super().fork_work_horse(job, queue)
        finally:
            gc.unfreeze()

    def request_force_stop(self, signum, frame):
        """Cold shutdown (serve stopping, a restart): RQ kills the horse. The task was not at fault,
        so it goes back to be run again, its attempt refunded, instead of ending as lost."""
        job_id = self.get_current_job_id() if self.horse_pid else None
        handoff = getattr(self, "handoff", None)
        try:
            super().request_force_stop(signum, frame)
        except SystemExit:
            if job_id and not (handoff is not None and settle_success(handoff)):
                self.settle_interrupted(job_id)
            raise

    def settle_interrupted(self, task_id):
        from tasks import services

        settle_gone_horse(task_id, lambda: services.task_requeue_interrupted(task_id=task_id),
                          "interrupted by a shutdown")

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):
        """The horse died without being asked to (OOM, kill -9, its watchdog): kill what is left
        of its process group, then settle the task at once instead of waiting for the reconciler."""
        from tasks import jobs, services
        from tasks.models import Task

        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        if retpid:
            try:
                os.killpg(retpid, signal.SIGKILL)
            except OSError:
                pass
        handoff = getattr(job, "handoff", None)
        if handoff is not None and settle_success(handoff):
            return  # it died after its task had succeeded
        if overran(job):
            # RQ kills a horse a minute past its timeout when the timeout exception did not end
            # it (swallowed by some broad except): that task timed out, it was not lost.
            def settle():
                jobs.cleanup_run(Task.objects.get(pk=job.id))
                services.task_mark_timeout(task_id=job.id)
        else:
            def settle():
                services.task_mark_lost(task_id=job.id, detail=f"work horse exited with status {ret_val}")
        settle_gone_horse(job.id, settle, "after its work horse died")


@functools.cache
def tagging(queue_class):
    """queue_class, whose dequeue of a task's job marks this process as running that task: the
    lines of the job's run, RQ's own "default: <id>" and "Job OK" included, carry its id (the
    work horse inherits the mark with the fork)."""
    from tasks.queues import RUN_TASK

    class TaskQueue(queue_class):
        @classmethod
        def dequeue_any(cls, *args, **kwargs):
            result = super().dequeue_any(*args, **kwargs)
            if result is not None and result[0].func_name == RUN_TASK:
                set_process_task(result[0].id)
            return result

    return TaskQueue


@dataclasses.dataclass
class Handoff:
    """A task's run as its worker prepared it before the fork, and the way back for its success:
    a memory file the horse writes the result to (no size limit, unlike a pipe nobody reads
    while the worker waits for the horse)."""

    task: object  # the Task moved to running, or None: it was not queued any more
    fd: int
    taken: bool = False

    def hand_back(self, result, outputs):
        """In the horse: the task succeeded with this result and these output StoredFiles."""
        data = json.dumps({"result": result, "outputs": [str(f.pk) for f in outputs]}).encode()
        with open(self.fd, "wb", closefd=False) as out:
            out.write(data)

    def take(self):
        """In the worker, once: what the horse handed back, or None."""
        if self.taken:
            return None
        self.taken = True
        os.lseek(self.fd, 0, os.SEEK_SET)
        with open(self.fd, "rb", closefd=False) as src:
            data = src.read()
        return json.loads(data) if data else None

    def close(self):
        os.close(self.fd)


def current_handoff():
    """In a work horse: its job's Handoff, if a TaskWorker prepared one."""
    from rq import get_current_job

    return getattr(get_current_job(), "handoff", None)


def prepare_run(job, worker_name):
    """In the worker, before the fork: move the job's task to running. None when the horse is
    to do it itself (not a task's job, or the database failed here)."""
    from django.db import DatabaseError, connections

    from mediacraft.logs import task_context
    from tasks import services
    from tasks.queues import RUN_TASK

    if job.func_name != RUN_TASK:
        return None
    task_id = job.args[0]
    fd = os.memfd_create("mediacraft-result", os.MFD_CLOEXEC)
    with task_context(task_id):
        try:
            drop_dead_connections()
            task = services.task_mark_running(task_id=task_id, worker_name=worker_name)
        except DatabaseError:
            log.warning("could not mark the task running; its work horse will", exc_info=True)
            connections.close_all()
            os.close(fd)
            return None
    return Handoff(task, fd)


def settle_success(handoff):
    """In the worker, after its horse: record the success it handed back, if any (True). A task
    settled meanwhile (cancelled, deleted) keeps none of that run's outputs."""
    from django.db import DatabaseError, connections

    from mediacraft.logs import task_context
    from storage.models import StoredFile
    from tasks import services

    record = handoff.take()
    if record is None:
        return False
    task_id = handoff.task.pk
    with task_context(task_id):
        try:
            drop_dead_connections()
            if not services.task_complete(task_id=task_id, result=record["result"]):
                StoredFile.objects.filter(pk__in=record["outputs"]).delete()
        except DatabaseError:
            # It stays running without a heartbeat: the reconciler finds it lost, and it runs again.
            log.exception("could not record the task's success")
            connections.close_all()
    return True


def drop_dead_connections():
    """The worker's open connection may have sat through a long task or a quiet night, and the
    server may have closed it meanwhile (a restart, an idle timeout): then it opens a new one.
    (A round trip on PostgreSQL; SQLite's never dies.)"""
    from django.db import DatabaseError, connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.is_usable():
            try:
                conn.close()
            except DatabaseError:
                pass  # it is dropped all the same


def set_aside_connections():
    """In a new work horse: the worker's open database connections are the worker's. The horse
    must never use them, nor close them (that would end the worker's session): it keeps them,
    untouched, until os._exit, and opens its own when it needs one."""
    from django.db import connections

    kept = []
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:
            kept.append(conn.connection)
            conn.connection = None
    return kept


def overran(job):
    from rq.utils import now

    return bool(job.timeout and job.timeout > 0 and job.started_at
                and (now() - job.started_at).total_seconds() > job.timeout)


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
    it again (psutil, the channel layer, the ORM's SQL compiler, the job's own modules, the C library)."""
    import channels_redis.core  # noqa: F401
    import django.db.models.sql.compiler  # noqa: F401
    import psutil  # noqa: F401

    from tasks import jobs, runtime  # noqa: F401 (jobs)
    from tasks.processors import registry

    registry()
    runtime.libc()
    _warm_up()


def _warm_up():
    """Do once, before any fork, what each horse would otherwise do for the first time: the
    database backend's first queries (its lazy imports and caches), the channel layer (its
    serializer; it opens no connection), a snapshot.
    Reads only; the connection is closed again before the first fork."""
    import uuid

    from channels.layers import get_channel_layer
    from django.db import DatabaseError, connections

    from tasks.events import public_task, task_files, task_snapshot
    from tasks.models import Task

    nobody = uuid.UUID(int=0)
    try:
        Task.objects.filter(pk=nobody).values("timeline", "kind", "started_at").first()
        Task.objects.filter(pk=nobody).first()
        task_files(nobody)
    except DatabaseError:
        log.debug("warm-up queries failed (database not migrated yet?)", exc_info=True)
    finally:
        connections.close_all()
    get_channel_layer().serialize({"type": "task.event"})
    public_task(task_snapshot(Task(pk=nobody, kind="command", status=Task.Status.RUNNING, timeline=[]), files={}))
