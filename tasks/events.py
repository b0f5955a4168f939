"""Task snapshots (untranslated, JSON-safe) and their delivery to channel groups.

A snapshot carries codes; `public_task` turns it into the API's task JSON in the active language,
so the API, the pages and the WebSocket consumer all speak one shape."""

import hashlib
import logging
import time

from redis.exceptions import RedisError

from tasks import messages
from tasks.processors import retry_statuses

log = logging.getLogger(__name__)

# What a send that cannot reach Redis raises. Nothing broader: in a work horse, RQ's job timeout
# arrives as an exception wherever the horse happens to be, and must not be swallowed here.
SEND_ERRORS = (RedisError, OSError)
TIME_FIELDS = ("created_at", "queued_at", "started_at", "finished_at", "expires_at", "retry_at")


def user_group(user_id):
    return f"user.{user_id}"


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


def new_task_files(task):
    """task_files() of a task just submitted, without the query when it can have none: it has no
    outputs yet, and inputs only when its params name uploaded files."""
    return None if task.params.get("files") else {"inputs": [], "outputs": []}


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
        # Whether the owner may retry it now: a kind may allow more than the usual statuses (a
        # download that completed with failed files), so the pages need not know the kinds.
        "retryable": task.status in retry_statuses(task),
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


# channels_redis 4.3's group_send script (RedisChannelLayer.group_send): add the message to each
# channel that has room, and count those that had none.
GROUP_SEND_LUA = """
    local over_capacity = 0
    local current_time = ARGV[#ARGV - 1]
    local expiry = ARGV[#ARGV]
    for i=1,#KEYS do
        if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
            redis.call('ZADD', KEYS[i], current_time, ARGV[i])
            redis.call('EXPIRE', KEYS[i], expiry)
        else
            over_capacity = over_capacity + 1
        end
    end
    return over_capacity
"""


def group_send(group, message):
    """RedisChannelLayer.group_send, done with this process's own Redis client, in the caller's
    thread: a work horse then needs no event loop nor a second connection (together about 10 ms of
    its life), a web request no hop to another thread, and sends from one thread keep their order.
    Keys, serializer and capacities are the layer's own (channels_redis is pinned; the event
    tests receive these messages through real consumers). Raises what Redis raises.
    message: the message, or a function making it, called only when a socket is in the group
    (mostly nobody watches: a visitor submits, closes the page and comes back later)."""
    from channels.layers import get_channel_layer

    from tasks.queues import redis_connection

    layer = get_channel_layer()
    conn = redis_connection()  # the layer's one host: both are settings.REDIS_URL
    key = layer._group_key(group)
    pipe = conn.pipeline(transaction=False)
    pipe.zremrangebyscore(key, min=0, max=int(time.time()) - layer.group_expiry)
    pipe.zrange(key, 0, -1)
    channel_names = [name.decode("utf8") for name in pipe.execute()[1]]
    if not channel_names:
        return
    if callable(message):
        message = message()
    by_connection, message_by_key, capacity_by_key = layer._map_channel_keys_to_connection(channel_names, message)
    keys = [channel_key for channel_keys in by_connection.values() for channel_key in channel_keys]
    now = time.time()
    pipe = conn.pipeline(transaction=False)
    for channel_key in keys:
        pipe.zremrangebyscore(channel_key, min=0, max=int(now) - int(layer.expiry))
    pipe.eval(GROUP_SEND_LUA, len(keys), *keys, *[message_by_key[k] for k in keys],
              *[capacity_by_key[k] for k in keys], now, layer.expiry)
    over_capacity = pipe.execute()[-1]
    if over_capacity:
        log.info("%s of %s channels over capacity in group %s", over_capacity, len(channel_names), group)


def send_snapshot(owner_id, snap):
    """A task's event to its owner's sockets. snap: its snapshot, or a function making it (made
    only when a socket is there to get it)."""
    group_send(user_group(owner_id), lambda: {"type": "task.event", "task": snap() if callable(snap) else snap})


def broadcast_task(task_id, count=True):
    """Send the task's current state to its owner's sockets; never fails the caller. True if
    sent; count=False leaves counting the event to the caller."""
    from tasks.models import Task

    task = Task.objects.filter(pk=task_id).first()
    return task is not None and broadcast(task, count)


def broadcast(task, count=True):
    """broadcast_task for a task the caller has read already."""
    try:
        send_snapshot(task.owner_id, lambda: task_snapshot(task))
    except SEND_ERRORS:
        log.warning("could not broadcast task %s", task.pk, exc_info=True)
        return False
    if count:
        from tasks.metrics import incr

        incr("mediacraft_progress_events_total")
    return True


def broadcast_deleted(task_id, owner_id):
    try:
        group_send(user_group(owner_id), {"type": "task.deleted", "task_id": str(task_id)})
    except SEND_ERRORS:
        log.warning("could not broadcast deletion of %s", task_id, exc_info=True)


def close_session_sockets(session_key):
    """Ask the sockets opened with this session to close (after a logout or a login, the browser
    reconnects as whoever it now is); never fails the caller."""
    try:
        group_send(session_group(session_key), {"type": "session.ended"})
    except SEND_ERRORS:
        log.warning("could not close the sockets of a session", exc_info=True)
