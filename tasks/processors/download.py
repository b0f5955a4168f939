"""`download`: fetch a batch of URLs through aria2c (aria2p), with files, bytes, speed and ETA.

Layout: file n of the batch is downloaded into output/<n>/ of the task's folder, so a download's
folder names its task (downloads.aria2.task_of) and every file has a folder of its own (two
files of the same name never collide, and what is not a finished output is a partial file).

A file that arrives becomes an output at once. Files that fail are listed with aria2's error;
the task fails only when no file arrived. A retry (automatic, or by hand, also of a completed task
with failures) keeps the files that arrived and fetches the rest. However a run ends, its
downloads leave aria2: the run removes them itself; after a cancel or a crash, cleanup() and the
scheduler's reconcile() do.
"""

import logging
import math
import shutil
import time
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from mediacraft.numbers import whole_number
from tasks.errors import ApiError, InvalidParams, TaskError
from tasks.models import Task, TaskKind
from tasks.processors import Processor

log = logging.getLogger(__name__)

MB = 1024 * 1024
MAX_CONNECTIONS = 16  # aria2's own limit for max-connection-per-server
DEFAULT_CONNECTIONS = 4
# aria2 is polled (one multicall) every POLL_SECONDS, faster in the first seconds so that small
# files do not wait for the next round; ctx.progress throttles what reaches the database.
POLL_SECONDS = 0.25
FIRST_POLLS = (0.1, 2.0)  # interval, for how long
USED_BYTES_EVERY = 1.0
SERVER_CHECK_EVERY = 1.0
DAEMON_WAIT_SECONDS = 15.0  # aria2c starting or being restarted by serve
RPC_GRACE_SECONDS = 30.0  # aria2c gone this long during a run: the attempt fails, retryably
MAX_READDS = 3  # a GID aria2 forgot (restarted without it) is added again this often
# Failures worth another attempt: aria2's timeout, network problem, name resolution and server
# busy (503), and a host name that no longer resolved when the run checked it again.
TRANSIENT_CODES = {"2", "6", "19", "29", "url_unresolved"}
PARAMS = {"urls", "names", "connections", "ruleGroup", "draft_config"}


def _lines(value, field, *, keep_blank):
    """A list from a list, or from text with one item per line."""
    if isinstance(value, str):
        lines = [line.strip() for line in value.splitlines()]
        if not keep_blank:
            return [line for line in lines if line]
        while lines and not lines[-1]:
            lines.pop()
        return lines
    if isinstance(value, list):
        return value
    raise InvalidParams(_("%(field)s must be a list, or text with one per line.") % {"field": field}, field)


def name_from_url(url):
    """The file name a URL suggests: its last path segment, decoded, made safe; else the host."""
    from storage.services import safe_name

    parts = urlsplit(url)
    segment = PurePosixPath(unquote(parts.path, errors="replace")).name
    return safe_name(segment, default="") or safe_name(parts.hostname or "", default="download")


def item_dir(output_dir, index):
    return Path(output_dir) / str(index)


def index_of(stored):
    """Which file of the batch an output is (its folder's name), or None."""
    try:
        return int(PurePosixPath(stored.path).parent.name)
    except ValueError:
        return None


def kept_outputs(task_id, total):
    """{index: StoredFile} of the files that arrived in earlier attempts and are still there."""
    from storage.models import StoredFile

    kept = {}
    for stored in StoredFile.objects.filter(task_id=task_id, role=StoredFile.Role.OUTPUT):
        index = index_of(stored)
        if index is not None and 0 <= index < total and index not in kept and stored.abs_path.is_file():
            kept[index] = stored
        else:
            stored.delete()
    return kept


def delete_partials(task_id, *, keep_resumable=False):
    """Delete everything in the task's output folder except its registered outputs (and, with
    keep_resumable, the folders aria2 can resume: a file with its .aria2 control file)."""
    from storage.models import StoredFile
    from tasks.runtime import task_work_dir

    output = task_work_dir(task_id) / "output"
    if not output.is_dir():
        return
    keep = {Path(p).parent.name for p in StoredFile.objects.filter(task_id=task_id, role=StoredFile.Role.OUTPUT)
            .values_list("path", flat=True)}
    for entry in output.iterdir():
        if entry.name in keep and entry.is_dir() and not entry.is_symlink():
            continue
        if keep_resumable and entry.is_dir() and not entry.is_symlink() and any(entry.glob("*.aria2")):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _size(value):
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def progress_stats(*, total_files, kept_sizes, done_sizes, failed, active):
    """Seed 001's DownloadProgressInfo from what this run knows. `active` holds the tellStatus
    answers of the files still under way (waiting ones included)."""
    completed = len(kept_sizes) + len(done_sizes)
    finished_bytes = sum(kept_sizes) + sum(done_sizes)
    lengths = [_size(a.get("totalLength")) for a in active]
    got = [_size(a.get("completedLength")) for a in active]
    known = all(lengths)
    total_size = finished_bytes + sum(lengths)
    downloaded = finished_bytes + sum(got)
    speed = sum(_size(a.get("downloadSpeed")) for a in active)
    if known and total_size:
        percent = 100.0 * downloaded / total_size
    else:  # a length still unknown: count files, the running ones by their known share
        share = sum(g / n for g, n in zip(got, lengths) if n)
        percent = 100.0 * (completed + failed + share) / total_files if total_files else 100.0
    if not active:
        eta = 0
    elif known and speed > 0:
        eta = math.ceil((total_size - downloaded) / speed)
    else:
        eta = None  # unknown: never a made-up or "infinite" figure
    return {
        "total_files": total_files,
        "completed_files": completed,
        "failed_files": failed,
        "active_files": sum(1 for a in active if a.get("status") == "active"),
        "total_size": total_size,
        "downloaded_size": downloaded,
        "progress_percent": round(min(100.0, percent), 1),
        "download_speed": speed,
        "eta_seconds": eta,
    }


class Attempt:
    """One run of a download task against aria2."""

    def __init__(self, ctx, rpc):
        self.ctx = ctx
        self.rpc = rpc
        params = ctx.params
        self.urls = params["urls"]
        self.names = params.get("names") or [None] * len(self.urls)
        self.connections = params.get("connections", DEFAULT_CONNECTIONS)
        self.total = len(self.urls)
        self.kept = {}  # index -> StoredFile from earlier attempts
        self.done = {}  # index -> StoredFile from this one
        self.failed = {}  # index -> failure entry
        self.running = {}  # gid -> index
        self.readds = {}
        self.checked_uris = set()
        self.active = []  # tellStatus answers of the files under way, from the last poll
        self.quota = settings.MEDIACRAFT_USER_QUOTA_MB * MB
        self.used = 0  # the owner's stored bytes: read every USED_BYTES_EVERY, plus what arrives meanwhile

    # Setting up.

    def add(self, index):
        from downloads import aria2

        folder = item_dir(self.ctx.output_dir, index)
        folder.mkdir(parents=True, exist_ok=True)
        options = aria2.download_options(folder, connections=self.connections, name=self.names[index])
        gid = aria2.call(self.rpc.add_uri, [self.urls[index]], options)
        self.running[gid] = index

    def fail(self, index, code, message):
        shutil.rmtree(item_dir(self.ctx.output_dir, index), ignore_errors=True)
        self.failed[index] = {"index": index, "url": self.urls[index],
                              "name": self.names[index] or name_from_url(self.urls[index]),
                              "error_code": str(code), "error": str(message or "")[:500]}

    def used_bytes(self):
        from storage.selectors import used_bytes

        return used_bytes(self.ctx.owner_id)

    # Finishing one file.

    def arrived(self, index, status):
        """aria2 says the file is complete: check where it is, name it, make it an output."""
        from storage.services import safe_name

        folder = item_dir(self.ctx.output_dir, index).resolve()
        files = status.get("files") or [{}]
        path = Path(files[0].get("path") or "")
        try:
            inside = path.is_absolute() and path.resolve().parent == folder and path.is_file()
        except OSError:
            inside = False
        if not inside:
            self.fail(index, "outside", f"aria2 saved the file outside its folder: {path}")
            return
        size = path.stat().st_size
        if self.used + size > self.quota:  # arrived between two polls, past the quota
            raise self.quota_exceeded(f"stored {self.used} B + arrived {size} B")
        name = self.names[index] or safe_name(path.name, default=name_from_url(self.urls[index]))
        final = folder / name
        if path.name != name:
            path.replace(final)
        for stray in folder.iterdir():
            if stray.name == name:
                continue
            if stray.is_dir() and not stray.is_symlink():
                shutil.rmtree(stray, ignore_errors=True)
            else:
                stray.unlink(missing_ok=True)
        self.done[index] = self.ctx.add_output(final, name)
        self.used += self.done[index].size

    # The loop.

    def run(self):
        import aria2p

        from downloads import aria2, policy

        ctx = self.ctx
        self.kept = kept_outputs(ctx.task_id, self.total)
        delete_partials(ctx.task_id, keep_resumable=True)
        todo = [i for i in range(self.total) if i not in self.kept]
        if todo and self.used_bytes() >= self.quota:
            raise TaskError("download_quota_exceeded", {"quota": settings.MEDIACRAFT_USER_QUOTA_MB})
        for index in todo:
            try:
                policy.check_url(self.urls[index])  # again: names may resolve elsewhere by now
            except policy.UrlRefused as exc:
                self.fail(index, exc.code, exc.technical())
                continue
            try:
                self.add(index)
            except aria2p.ClientException as exc:
                self.fail(index, "refused", exc.message)
        self.used, used_at = self.used_bytes(), time.monotonic()
        checked_servers_at = 0.0
        unreachable_since = None
        started = time.monotonic()
        while self.running:
            fast = time.monotonic() - started < FIRST_POLLS[1]
            time.sleep(FIRST_POLLS[0] if fast else POLL_SECONDS)
            try:
                answers = aria2.statuses(self.rpc, list(self.running))
            except aria2.Unreachable as exc:
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > RPC_GRACE_SECONDS:
                    raise TaskError("aria2_unavailable", {"reason": str(exc)[:200]}, retryable=True) from None
                continue
            unreachable_since = None
            if time.monotonic() - used_at >= USED_BYTES_EVERY:
                self.used, used_at = self.used_bytes(), time.monotonic()
            for gid, status in answers.items():
                self.settle(gid, status)
            self.active = [answers[gid] for gid in self.running if answers.get(gid)]
            self.check_quota()
            watch_servers = not settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE
            if watch_servers and time.monotonic() - checked_servers_at >= SERVER_CHECK_EVERY:
                checked_servers_at = time.monotonic()
                self.check_servers()
            self.report()
        return self.report()

    def settle(self, gid, status):
        """Act on one download's state: finished, failed, forgotten by aria2, or still going."""
        from downloads import aria2

        index = self.running[gid]
        if status is None:  # aria2 restarted and its session did not hold this one yet
            del self.running[gid]
            self.readds[index] = self.readds.get(index, 0) + 1
            if self.readds[index] > MAX_READDS:
                self.fail(index, "lost", "aria2 lost the download repeatedly")
            else:
                self.add(index)
            return
        state = status["status"]
        if state not in ("complete", "error", "removed"):
            return
        del self.running[gid]
        aria2.remove(self.rpc, [gid])  # only its result is left in aria2: forget it
        if state == "complete":
            self.arrived(index, status)
        elif state == "error":
            self.fail(index, status.get("errorCode") or "error", status.get("errorMessage") or "")
        else:
            self.fail(index, "removed", "the download was removed from aria2")

    def check_quota(self):
        """Stored files (this run's included) count, and the files under way count what they
        already hold, or their announced length once it is known."""
        in_flight = sum(max(_size(a.get("completedLength")), _size(a.get("totalLength"))) for a in self.active)
        if self.used + in_flight > self.quota:
            raise self.quota_exceeded(f"stored {self.used} B + downloading {in_flight} B")

    def quota_exceeded(self, detail):
        return TaskError("download_quota_exceeded", {"quota": settings.MEDIACRAFT_USER_QUOTA_MB},
                         detail=f"{detail} > quota {self.quota} B")

    def check_servers(self):
        """aria2 follows redirects by itself: stop a download that was sent to a non-public
        address. Each new address is checked once; the URL itself was checked before adding it."""
        import aria2p

        from downloads import aria2, policy

        for gid, index in list(self.running.items()):
            try:
                servers = aria2.call(self.rpc.get_servers, gid)
            except aria2p.ClientException:
                continue  # not active (waiting, or just finished)
            uris = {s.get("currentUri", "") for entry in servers for s in entry.get("servers", [])}
            for uri in uris - self.checked_uris - {self.urls[index]}:
                try:
                    policy.check_url(uri, allow_private=False)
                except policy.UrlRefused as exc:
                    aria2.remove(self.rpc, [gid])
                    del self.running[gid]
                    self.fail(index, exc.code, f"redirected to {policy.shown(uri)}: {exc.technical()}")
                    break
                self.checked_uris.add(uri)

    def report(self):
        stats = progress_stats(
            total_files=self.total, kept_sizes=[s.size for s in self.kept.values()],
            done_sizes=[s.size for s in self.done.values()], failed=len(self.failed), active=self.active,
        )
        completed = stats["completed_files"]
        self.ctx.progress(min(stats["progress_percent"], 99.9), stage="downloading", code="download_progress",
                          params={"completed": completed, "total": self.total, "failed": len(self.failed)},
                          stats=stats)
        return stats

    def result(self):
        outputs = {**self.kept, **self.done}
        return {
            "files": [{"index": i, "url": self.urls[i], "name": outputs[i].original_name, "size": outputs[i].size,
                       "file_id": str(outputs[i].pk)} for i in sorted(outputs)],
            "failed": [self.failed[i] for i in sorted(self.failed)],
            "total_files": self.total,
            "completed_files": len(outputs),
            "failed_files": len(self.failed),
            "downloaded_size": sum(s.size for s in outputs.values()),
        }


class DownloadProcessor(Processor):
    kind = TaskKind.DOWNLOAD
    spawns_tools = False
    default_timeout = 6 * 3600

    def result_table(self, result):
        """Every URL in the order given: its file and size, or why it failed (aria2's own words)."""
        from django.template.defaultfilters import filesizeformat

        if not isinstance(result, dict) or not isinstance(result.get("files"), list) \
                or not isinstance(result.get("failed"), list):
            return None
        entries = [(f, True) for f in result["files"] if isinstance(f, dict)]
        entries += [(f, False) for f in result["failed"] if isinstance(f, dict)]
        entries.sort(key=lambda entry: entry[0].get("index") if isinstance(entry[0].get("index"), int) else 0)
        rows = []
        for entry, arrived in entries:
            size = entry.get("size") if isinstance(entry.get("size"), int) else None
            rows.append({
                "title": str(entry.get("name") or ""), "note": str(entry.get("url") or ""),
                "status": "downloaded" if arrived else "failed",
                "cells": [str(_("Downloaded") if arrived else _("Failed")),
                          filesizeformat(size) if arrived and size is not None else "—"],
                "error": "" if arrived else _("aria2 error %(code)s: %(message)s") % {
                    "code": entry.get("error_code") or "?", "message": entry.get("error") or "—"},
            })
        return {"columns": [_("File"), _("Result"), pgettext("bytes", "Size")], "rows": rows}

    def validate(self, *, params, files, user):
        from downloads import policy
        from storage.selectors import used_bytes

        if files:
            raise InvalidParams(_("Download tasks take no files."), "files")
        unknown = sorted(set(params) - PARAMS)
        if unknown:
            name = str(unknown[0])[:60]
            raise InvalidParams(_("Unknown parameter: %(name)s.") % {"name": name}, name)
        urls = _lines(params.get("urls", ""), "urls", keep_blank=False)
        if not urls and params.get("ruleGroup") is None:  # a seed 001 rule group may have nothing to fetch
            raise InvalidParams(_("Give at least one URL to download."), "urls")
        limit = settings.MEDIACRAFT_DOWNLOAD_MAX_URLS
        if len(urls) > limit:
            raise InvalidParams(_("At most %(n)s URLs per task.") % {"n": limit}, "urls")
        cleaned, seen = [], set()
        for i, url in enumerate(urls):
            try:
                url = policy.check_url(url)
            except policy.UrlRefused as exc:
                raise InvalidParams(exc.message, f"urls.{i}", code=exc.code) from None
            if url in seen:
                raise InvalidParams(_("%(url)s is listed twice.") % {"url": policy.shown(url)}, f"urls.{i}")
            seen.add(url)
            cleaned.append(url)
        names = self._names(params.get("names"), len(cleaned))
        connections = params.get("connections", DEFAULT_CONNECTIONS)
        connections = whole_number(connections, "connections", 1, MAX_CONNECTIONS)
        extra = {}
        for key in ("ruleGroup", "draft_config"):
            if params.get(key) is not None:
                if not isinstance(params[key], dict):
                    raise InvalidParams(_("%(field)s must be a JSON object.") % {"field": key}, key)
                extra[key] = params[key]
        if user is not None and user.is_authenticated and used_bytes(user) >= settings.MEDIACRAFT_USER_QUOTA_MB * MB:
            raise ApiError("quota_exceeded", _("Your storage quota of %(quota)s MB is full; delete old tasks to make "
                                               "room.") % {"quota": settings.MEDIACRAFT_USER_QUOTA_MB},
                           status=413, field="urls")
        return {"urls": cleaned, "names": names, "connections": connections, **extra}

    @staticmethod
    def _names(value, count):
        from storage.services import safe_name

        if value in (None, "", []):
            return [None] * count
        names = _lines(value, "names", keep_blank=True)
        if len(names) > count:
            raise InvalidParams(_("There are more names (%(names)s) than URLs (%(urls)s).")
                                % {"names": len(names), "urls": count}, "names")
        cleaned = []
        for i, name in enumerate(names):
            if name is None or (isinstance(name, str) and not name.strip()):
                cleaned.append(None)
                continue
            if not isinstance(name, str):
                raise InvalidParams(_("File names must be text."), f"names.{i}")
            safe = safe_name(name, default="")
            if not safe or safe.endswith(".aria2"):
                raise InvalidParams(_("%(name)s cannot be used as a file name.") % {"name": name[:100]}, f"names.{i}")
            cleaned.append(safe)  # two files may share a name: each has a folder of its own
        return cleaned + [None] * (count - len(cleaned))

    def make_title(self, params):
        group = params.get("ruleGroup") or {}
        if isinstance(group.get("title"), str) and group["title"].strip():
            return group["title"].strip()
        if not params["urls"]:
            return str(group.get("id") or "")[:200]
        first = params["names"][0] or name_from_url(params["urls"][0])
        more = len(params["urls"]) - 1
        return f"{first} (+{more})" if more else first

    def form_class(self, user):
        from tasks.forms import TaskForm

        return build_download_form(TaskForm)

    def run(self, ctx):
        from downloads import aria2

        if not ctx.params["urls"]:  # a rule group of local files only: nothing to fetch, nor aria2 to ask
            stats = progress_stats(total_files=0, kept_sizes=[], done_sizes=[], failed=0, active=[])
            ctx.progress(100, stage="done", code="download_progress", params={"completed": 0, "total": 0, "failed": 0},
                         stats=stats)
            return Attempt(ctx, rpc=None).result()
        ctx.progress(0, stage="starting", code="download_connecting")
        if not aria2.configured():
            raise TaskError("aria2_not_configured")
        rpc = aria2.client()
        deadline = time.monotonic() + DAEMON_WAIT_SECONDS
        while True:
            try:
                aria2.version(rpc)
                break
            except aria2.Unreachable as exc:
                if time.monotonic() > deadline:
                    raise TaskError("aria2_unavailable", {"reason": str(exc)[:200]}, retryable=True) from None
                time.sleep(0.5)
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        attempt = Attempt(ctx, rpc)
        try:
            aria2.remove_task_downloads(rpc, ctx.task_id)  # an earlier attempt's, after a lost worker
            stats = attempt.run()
        except aria2.Unreachable as exc:  # gone while adding or removing: another attempt may do better
            raise TaskError("aria2_unavailable", {"reason": str(exc)[:200]}, retryable=True) from None
        finally:
            if attempt.running:
                try:
                    aria2.remove(rpc, list(attempt.running))
                except aria2.Unreachable:
                    log.warning("task %s: aria2 unreachable; the scheduler will remove its downloads", ctx.task_id)
        result = attempt.result()
        if not result["completed_files"]:
            failures = result["failed"]
            first = failures[0]["error"][:200] if failures else ""
            raise TaskError(
                "download_all_failed", {"count": len(failures), "error": first},
                detail="\n".join(f"{f['url']}: [{f['error_code']}] {f['error']}" for f in failures)[-8000:],
                retryable=bool(failures) and all(f["error_code"] in TRANSIENT_CODES for f in failures),
            )
        ctx.progress(100, stage="done", code="download_progress",
                     params={"completed": result["completed_files"], "total": attempt.total,
                             "failed": result["failed_files"]},
                     stats={**stats, "progress_percent": 100.0, "download_speed": 0, "eta_seconds": 0})
        return result

    def cleanup(self, ctx):
        """After a cancel, failure or timeout: its downloads leave aria2, partial files go; the
        files that arrived stay (a retry fetches only the rest)."""
        from downloads import aria2

        if aria2.configured():
            try:
                aria2.remove_task_downloads(aria2.client(), ctx.task_id)
            except aria2.Unreachable:
                log.warning("task %s: aria2 unreachable; the scheduler will remove its downloads", ctx.task_id)
        delete_partials(ctx.task_id)

    def retry_statuses(self, task):
        statuses = super().retry_statuses(task)
        if task.status == Task.Status.COMPLETED and (task.result or {}).get("failed"):
            return (*statuses, Task.Status.COMPLETED)
        return statuses

    def prepare_retry(self, task_id):
        """Keep the files that arrived; the next run fetches the rest."""
        delete_partials(task_id)

    def reconcile(self):
        """Remove aria2 downloads whose task is no longer running (a killed worker's, or ones a
        restarted aria2c brought back from its session). Partial files of finished or deleted
        tasks go too; those of a task waiting for its next attempt stay for it to resume."""
        from downloads import aria2
        from tasks.runtime import task_work_dir

        if not aria2.configured():
            return
        try:
            rpc = aria2.client(timeout=2.0)
            found = aria2.by_task(rpc)
            if not found:
                return
            states = dict(Task.objects.filter(pk__in=list(found)).values_list("pk", "status"))
            states = {str(pk): status for pk, status in states.items()}
            for task_id, gids in found.items():
                status = states.get(task_id)
                if status == Task.Status.RUNNING:
                    continue
                aria2.remove(rpc, gids)
                log.warning("removed %s aria2 downloads of task %s (%s)", len(gids), task_id, status or "deleted")
                if status is None:
                    shutil.rmtree(task_work_dir(task_id), ignore_errors=True)
                elif status in Task.TERMINAL:
                    delete_partials(task_id)
        except aria2.Unreachable as exc:
            log.debug("aria2 unreachable, orphaned downloads not checked: %s", exc)


def build_download_form(base):
    from django import forms

    class DownloadForm(base):
        urls = forms.CharField(
            label=_("URLs"), widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
            help_text=_("One http, https or ftp URL per line."),
        )
        names = forms.CharField(  # not stripped: a first empty line keeps the first file's name
            label=_("File names"), required=False, strip=False,
            widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
            help_text=_("Optional, one per line in the order of the URLs; an empty line keeps the server's name."),
        )
        connections = forms.IntegerField(
            label=_("Connections per server"), min_value=1, max_value=MAX_CONNECTIONS, initial=DEFAULT_CONNECTIONS,
            help_text=_("More connections can be faster on large files."),
        )

        def to_params(self):
            params = {"urls": self.cleaned_data["urls"], "connections": self.cleaned_data["connections"]}
            if self.cleaned_data.get("names", "").strip():
                params["names"] = self.cleaned_data["names"]
            return params

    DownloadForm.kind = TaskKind.DOWNLOAD.value
    return DownloadForm


PROCESSOR = DownloadProcessor()
