"""Task snapshots (untranslated, JSON-safe) and their delivery to channel groups.

A snapshot carries codes; `public_task` turns it into the API's task JSON in the active language,
so the API, the pages and the WebSocket consumer all speak one shape."""

import asyncio
import functools
import hashlib
import logging
import os
import threading

from tasks import messages

log = logging.getLogger(__name__)

SEND_TIMEOUT = 10  # seconds a sync caller waits for its event to reach Redis
TIME_FIELDS = ("created_at", "queued_at", "started_at", "finished_at", "expires_at", "retry_at")


def user_group(user_id):
    return f"user.{user_id}"


def task_group(task_id):
    return f"task.{task_id}"


def session_group(session_key):
    """The sockets of one browser session. The key is a credential: only a hash names the group."""
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:32]


def task_files(task_id):
    """The task's inputs and outputs as the API lists them."""
    from storage.models import StoredFile

    files = {"inputs": [], "outputs": []}
    for f in StoredFile.objects.filter(task_id=task_id).order_by("role", "position", "created_at"):
        files[f"{f.role}s"].append({"id": str(f.pk), "name": f.original_name, "size": f.size,
                                    "url": f"/api/files/{f.pk}/download/", "media": f.media})
    return files


def task_snapshot(task, files=None):
    """files: task_files() computed by the caller, to spare the query on hot paths."""
    snap = {
        "task_id": str(task.pk),
        "owner_id": task.owner_id,
        "kind": task.kind,
        "title": task.title,
        "status": task.status,
        "stage": task.stage,
        "progress": task.progress,
        "message_code": task.message_code,
        "message_params": task.message_params,
        "stats": task.stats,
        "priority": task.priority,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "timeout": task.timeout,
        "error_code": task.error_code,
        "error_params": task.error_params,
        "error_detail": task.error_detail,
        "result": task.result,
        "params": task.params,
        "timeline": task.timeline,
        **(files if files is not None else task_files(task.pk)),
    }
    for name in TIME_FIELDS:
        value = getattr(task, name)
        snap[name] = value.isoformat() if value else None
    return snap


def public_task(snap):
    """The task as the API shows it, translated into the active language."""
    from tasks.models import Task, TaskKind

    out = {k: v for k, v in snap.items() if k not in ("owner_id", "message_code", "message_params",
                                                       "error_code", "error_params", "error_detail")}
    out["status_label"] = str(Task.Status(snap["status"]).label)
    out["kind_label"] = str(TaskKind(snap["kind"]).label) if snap["kind"] in TaskKind.values else snap["kind"]
    out["stage_label"] = messages.render(messages.STAGES, snap["stage"]) if snap["stage"] in messages.STAGES else snap["stage"]
    out["message"] = messages.render(messages.MESSAGES, snap["message_code"], snap["message_params"])
    if snap["error_code"]:
        out["error"] = {
            "code": snap["error_code"],
            "message": messages.render(messages.ERRORS, snap["error_code"], snap["error_params"]),
            "detail": snap["error_detail"],
        }
    else:
        out["error"] = None
    return out


@functools.cache
def _event_loop(pid):
    """The event loop, in a daemon thread, through which process `pid` sends events from sync code:
    its channel-layer connection is opened once, where async_to_sync would run every send on a new
    loop with a new Redis connection. Per pid, since threads do not survive a fork."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="events", daemon=True).start()
    return loop, asyncio.Lock()


async def _in_turn(lock, coroutine):
    async with lock:  # FIFO: sends leave in the order they were asked for
        return await coroutine


def send_soon(coroutine):
    """Schedule a channel-layer coroutine on this process's event loop, after those scheduled
    before it: two group_sends in flight at once may reach Redis in either order, and a viewer
    must never get a task's "running" after its "completed". Returns a concurrent Future."""
    loop, lock = _event_loop(os.getpid())
    return asyncio.run_coroutine_threadsafe(_in_turn(lock, coroutine), loop)


async def send_snapshot(layer, snap):
    event = {"type": "task.event", "task": snap}
    await layer.group_send(user_group(snap["owner_id"]), event)
    await layer.group_send(task_group(snap["task_id"]), event)


def broadcast_task(task_id):
    """Send the task's current state to its owner's sockets; never fails the caller."""
    from channels.layers import get_channel_layer

    from tasks.models import Task

    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        return
    try:
        send_soon(send_snapshot(get_channel_layer(), task_snapshot(task))).result(timeout=SEND_TIMEOUT)
    except Exception:
        log.warning("could not broadcast task %s", task_id, exc_info=True)
        return
    from tasks.metrics import incr

    incr("mediacraft_progress_events_total")


def broadcast_deleted(task_id, owner_id):
    from channels.layers import get_channel_layer

    try:
        send_soon(get_channel_layer().group_send(
            user_group(owner_id), {"type": "task.deleted", "task_id": str(task_id)}
        )).result(timeout=SEND_TIMEOUT)
    except Exception:
        log.warning("could not broadcast deletion of %s", task_id, exc_info=True)


def close_session_sockets(session_key):
    """Ask the sockets opened with this session to close (after a logout or a login, the browser
    reconnects as whoever it now is); never fails the caller."""
    from channels.layers import get_channel_layer

    try:
        send_soon(get_channel_layer().group_send(session_group(session_key), {"type": "session.ended"})).result(
            timeout=SEND_TIMEOUT)
    except Exception:
        log.warning("could not close the sockets of a session", exc_info=True)
