"""RQ entry points. They receive ids, never model instances; heavy imports stay inside."""

import logging
import os

log = logging.getLogger(__name__)


def run_task(task_id):
    """Run one attempt of a task in the RQ work horse."""
    from rq.timeouts import JobTimeoutException

    from tasks import services
    from tasks.errors import TaskAborted, TaskError
    from tasks.processors import get_processor
    from tasks.runtime import EventSender, ProgressReporter, TaskContext, Watchdog

    task = services.task_mark_running(task_id=task_id, worker_name=os.environ.get("RQ_WORKER_ID", ""))
    if task is None:
        log.info("task %s: not queued any more, skipping", task_id)
        return "skipped"
    processor = get_processor(task.kind)
    sender = EventSender()
    reporter = ProgressReporter(task, sender)
    ctx = TaskContext(task, reporter)
    watchdog = Watchdog(task.pk, reporter)
    watchdog.start()
    outcome = "failed"
    try:
        if processor is None:
            raise TaskError("kind_unavailable", detail=f"no processor for kind {task.kind!r}")
        result = processor.run(ctx)
        watchdog.stop()
        reporter.flush_pending()
        services.task_complete(task_id=task.pk, result=result if result is not None else {})
        outcome = "completed"
    except JobTimeoutException:
        watchdog.stop()
        ctx.kill_children()
        services.task_mark_timeout(task_id=task.pk)
        outcome = "timeout"
    except TaskAborted:
        # Someone else settled the task (reconciler, delete); its files may already be a new attempt's.
        watchdog.stop()
        ctx.kill_children()
        outcome = "aborted"
    except TaskError as exc:
        watchdog.stop()
        ctx.kill_children()
        services.task_fail(task_id=task.pk, code=exc.code, params=exc.params, detail=exc.detail, retryable=exc.retryable)
    except (ConnectionError, TimeoutError) as exc:
        watchdog.stop()
        ctx.kill_children()
        services.task_fail(task_id=task.pk, code="transient", params={"reason": str(exc)[:200]}, retryable=True)
    except Exception as exc:
        import traceback

        watchdog.stop()
        ctx.kill_children()
        log.exception("task %s crashed: %s", task.pk, exc)
        services.task_fail(task_id=task.pk, code="internal", detail=traceback.format_exc()[-8000:])
    finally:
        watchdog.stop()
        if outcome not in ("completed", "aborted") and processor is not None:
            _cleanup(processor, ctx)
        sender.close()
    return outcome


def _cleanup(processor, ctx):
    try:
        processor.cleanup(ctx)
    except Exception:
        log.exception("task %s: cleanup failed", ctx.task_id)


def finish_cancelled(task_id):
    """The work horse was stopped on request: mark the task cancelled and remove its leftovers."""
    from tasks import services
    from tasks.models import Task
    from tasks.processors import get_processor
    from tasks.runtime import TaskContext

    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        return
    services.task_mark_cancelled(task_id=task_id)
    processor = get_processor(task.kind)
    if processor is not None:
        _cleanup(processor, TaskContext(task, reporter=None))


def on_job_stopped(job, connection, *args, **kwargs):
    """RQ stop callback, run by the worker after it killed the work horse's process group."""
    from django.db import close_old_connections, connections

    close_old_connections()
    try:
        finish_cancelled(job.id)
    finally:
        connections.close_all()


def cleanup_expired():
    from tasks import services

    return services.cleanup_expired()
