"""RQ entry points. They receive ids, never model instances; heavy imports stay inside."""

import errno
import logging
import os
import traceback

log = logging.getLogger(__name__)


def run_task(task_id):
    """Run one attempt of a task in the RQ work horse. Leftovers are removed before the final
    status is written, so a viewer never sees a finished task with half-written files."""
    from mediacraft.logs import task_context

    with task_context(task_id):
        return _run_task(task_id)


def _run_task(task_id):
    from rq.timeouts import JobTimeoutException

    from tasks import services
    from tasks.errors import TaskAborted, TaskError
    from tasks.processors import get_processor
    from tasks.runtime import (
        EventSender, ProgressReporter, TaskContext, Watchdog, become_subreaper, guard_process_group,
    )
    from tasks.worker import current_handoff

    handoff = current_handoff()
    if handoff is not None:  # its worker moved it to running before the fork
        task = handoff.task
    else:
        task = services.task_mark_running(task_id=task_id, worker_name=os.environ.get("RQ_WORKER_ID", ""))
    if task is None:
        log.info("task %s: not queued any more, skipping", task_id)
        return "skipped"
    processor = get_processor(task.kind)
    if processor is None or processor.spawns_tools:
        guard_process_group()  # its pipe stays open as long as this horse lives
    become_subreaper()
    sender = EventSender()
    reporter = ProgressReporter(task, sender)
    ctx = TaskContext(task, reporter)
    watchdog = Watchdog(task.pk, reporter)
    watchdog.start()
    try:
        try:
            if processor is None:
                raise TaskError("kind_unavailable", detail=f"no processor for kind {task.kind!r}")
            result = processor.run(ctx)
        finally:
            watchdog.stop()
            ctx.kill_children()
        reporter.flush_pending()
        if handoff is not None:  # its worker records the success once this horse is gone
            handoff.hand_back(result if result is not None else {}, ctx.outputs)
            return "completed"
        if not services.task_complete(task_id=task.pk, result=result if result is not None else {}):
            # Settled by someone else at the last moment: this run's results must not linger.
            for stored in ctx.outputs:
                stored.delete()
            return "aborted"
        return "completed"
    except TaskAborted:
        # Someone else settled the task (reconciler, delete); its files may already be a new attempt's.
        return "aborted"
    except JobTimeoutException:
        _cleanup(processor, ctx)
        services.task_mark_timeout(task_id=task.pk)
        return "timeout"
    except TaskError as exc:
        _cleanup(processor, ctx)
        services.task_fail(task_id=task.pk, code=exc.code, params=exc.params, detail=exc.detail, retryable=exc.retryable)
    except (ConnectionError, TimeoutError) as exc:
        _cleanup(processor, ctx)
        services.task_fail(task_id=task.pk, code="transient", params={"reason": str(exc)[:200]}, retryable=True)
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # a full disk is no bug: say so
            code, detail = "disk_full", str(exc)
        else:
            log.exception("task %s crashed: %s", task.pk, exc)
            code, detail = "internal", traceback.format_exc()[-8000:]
        _cleanup(processor, ctx)
        services.task_fail(task_id=task.pk, code=code, detail=detail)
    finally:
        sender.close()
    return "failed"


def _cleanup(processor, ctx):
    if processor is None:
        return
    try:
        processor.cleanup(ctx)
    except Exception:
        log.exception("task %s: cleanup failed", ctx.task_id)


def cleanup_run(task):
    """Remove what a run of the task left behind, outside its work horse (which is gone)."""
    from tasks.processors import get_processor
    from tasks.runtime import TaskContext

    _cleanup(get_processor(task.kind), TaskContext(task, reporter=None))


def finish_cancelled(task_id):
    """The work horse was stopped on request: remove its leftovers, then mark the task cancelled."""
    from tasks import services
    from tasks.models import Task

    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        return
    cleanup_run(task)
    services.task_mark_cancelled(task_id=task_id)


def on_job_stopped(job, connection, *args, **kwargs):
    """RQ stop callback, run by the worker after it killed the work horse's process group."""
    from django.db import close_old_connections, connections

    from mediacraft.logs import task_context

    close_old_connections()
    try:
        with task_context(job.id):
            finish_cancelled(job.id)
    finally:
        connections.close_all()
