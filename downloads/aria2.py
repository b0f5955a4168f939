"""Talking to aria2c over JSON-RPC with aria2p: a client per use (never a module-level one),
listing, and removing downloads so that nothing keeps writing after a task ends.

Every download a task adds has its folder under the task's output folder
(MEDIA_ROOT/tasks/<task id>/output/<n>/), so the folder names its task: that is how a task's
downloads, or the orphans of a killed worker, are found again."""

import logging
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

log = logging.getLogger(__name__)

UNFINISHED = ("active", "waiting", "paused")
STATUS_KEYS = ["gid", "status", "totalLength", "completedLength", "downloadSpeed", "errorCode", "errorMessage",
               "dir", "files"]
LIST_KEYS = ["gid", "status", "dir"]
LIST_LIMIT = 100_000


class Unreachable(Exception):
    """aria2c does not answer (down, restarting, wrong address or secret)."""


def configured():
    return bool(settings.MEDIACRAFT_ARIA2_URL)


def client(timeout=5.0):
    import aria2p

    url = urlsplit(settings.MEDIACRAFT_ARIA2_URL)
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return aria2p.Client(host=f"{url.scheme}://{host}", port=url.port, secret=settings.MEDIACRAFT_ARIA2_SECRET,
                         timeout=timeout)


def call(method, *args, **kwargs):
    """client.method(*args) with transport failures and refusals of the secret as Unreachable;
    aria2's own answers (e.g. an unknown GID) stay aria2p.ClientException."""
    import aria2p
    import requests

    try:
        return method(*args, **kwargs)
    except (requests.RequestException, OSError, ValueError) as exc:
        raise Unreachable(str(exc)[:300]) from None
    except aria2p.ClientException as exc:
        if exc.message == "Unauthorized":
            raise Unreachable("aria2 refused the RPC secret (MEDIACRAFT_ARIA2_SECRET)") from None
        raise


def version(rpc):
    return call(rpc.get_version)["version"]


def download_options(folder, *, connections, name=None):
    """Options of one addUri call: its own folder, the connections, and never a download of
    what the file itself points to (a fetched .torrent or .metalink stays a file)."""
    options = {
        "dir": str(folder),
        "split": str(connections),
        "max-connection-per-server": str(connections),
        "min-split-size": "1M",
        "allow-overwrite": "true",
        "auto-file-renaming": "false",
        "content-disposition-default-utf8": "true",
        "follow-torrent": "false",
        "follow-metalink": "false",
        "file-allocation": "none",
    }
    if name:
        options["out"] = name
    return options


def statuses(rpc, gids):
    """{gid: tellStatus answer, or None when aria2 does not know the GID} in one request."""
    if not gids:
        return {}
    answers = call(rpc.multicall2, [(rpc.TELL_STATUS, [gid, STATUS_KEYS]) for gid in gids])
    return {gid: answer[0] if isinstance(answer, list) else None for gid, answer in zip(gids, answers)}


def list_downloads(rpc):
    """Every download aria2 holds (active, waiting and stopped): [{"gid", "status", "dir"}]."""
    active, waiting, stopped = call(rpc.multicall2, [
        (rpc.TELL_ACTIVE, [LIST_KEYS]),
        (rpc.TELL_WAITING, [0, LIST_LIMIT, LIST_KEYS]),
        (rpc.TELL_STOPPED, [0, LIST_LIMIT, LIST_KEYS]),
    ])
    found = []
    for answer in (active, waiting, stopped):
        if isinstance(answer, list):
            found.extend(answer[0])
    return found


def tasks_root():
    return (Path(settings.MEDIA_ROOT) / "tasks").resolve()


def task_of(folder):
    """The task id a download's folder belongs to, or None for anything not ours."""
    if not folder:
        return None
    try:
        relative = Path(folder).resolve().relative_to(tasks_root())
    except ValueError:
        return None
    parts = relative.parts
    if len(parts) < 2 or parts[1] != "output":
        return None
    try:
        return str(uuid.UUID(parts[0]))
    except ValueError:
        return None


def by_task(rpc):
    """{task id: [gid, ...]} of every download in aria2 that belongs to a task."""
    found = {}
    for item in list_downloads(rpc):
        task_id = task_of(item.get("dir"))
        if task_id is not None:
            found.setdefault(task_id, []).append(item["gid"])
    return found


def remove(rpc, gids, wait=5.0):
    """Stop these downloads and forget them. Returns once aria2 reports none of them running, so
    it writes no more to their files (it saves a control file while stopping)."""
    import aria2p

    gids = list(gids)
    if not gids:
        return
    for gid in gids:
        try:
            call(rpc.force_remove, gid)
        except aria2p.ClientException:
            pass  # already stopped, or unknown
    deadline = time.monotonic() + wait
    left = gids
    while left:
        left = [gid for gid, status in statuses(rpc, left).items() if status and status["status"] in UNFINISHED]
        if not left:
            break
        if time.monotonic() > deadline:
            log.warning("aria2 still runs %s after removal", ", ".join(left))
            break
        time.sleep(0.05)
    for gid in gids:
        try:
            call(rpc.remove_download_result, gid)
        except aria2p.ClientException:
            pass


def remove_task_downloads(rpc, task_id):
    """Remove whatever aria2 holds for this task; returns how many."""
    gids = by_task(rpc).get(str(task_id), [])
    remove(rpc, gids)
    return len(gids)
