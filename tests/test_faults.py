"""Faults, with real processes (issue 7): kill -9 of a worker in the middle of each kind of task,
of Redis and of the whole `serve` with tasks in every state, a storm of cancels, and a disk
that fills up while a result is written. Every task ends in exactly one proper state and
leaves no process and no half-written file behind."""

import errno
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter

import psutil
import pytest
from django.db import connection
from django.utils import translation

from storage.models import StoredFile
from tasks import services
from tasks.errors import ApiError
from tasks.messages import ERRORS, render
from tasks.models import Task
from tasks.runtime import task_work_dir
from tests.conftest import make_user, submit_command, wait_for
from tests.download_support import MB, aria2d, file_server, generated, sha256  # noqa: F401 (fixtures)
from tests.media_helpers import LOGO, frame_rgb, info, make_video, redness
from tests.qbt_support import QBT_BINARY, SKIP_REASON, QbtInstance
from tests.strm_support import (  # noqa: F401 (dav_factory: a fixture)
    DAV_PASSWORD, DAV_USER, dav_factory, expected_url, files_under, make_profile, write,
)
from tests.test_engine_lifecycle import _alive, _read_pid, wait_status
from tests.test_recovery import horse_of
from tests.test_serve import Visitor, alive, cmdline, make_server, poll  # noqa: F401 (make_server: a fixture)

S = Task.Status
CRASH_SETTLES_WITHIN = 30  # seconds from the kill to retrying or failed, with the scheduler running

pytestmark = pytest.mark.timeout(150)


# --- helpers -----------------------------------------------------------------------------------

def crash(worker):
    """kill -9 the RQ worker and its work horse at once, as a crash would: neither is left to
    clean up. The horse leads a process group of its own (with the tools it runs), which is
    not killed: whether the tools outlive their horse is what the tests look at."""
    horse = horse_of(worker)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker's group (it was started in its own session)
    os.kill(horse.pid, signal.SIGKILL)
    wait_for(lambda: not _alive(worker.pid) and not _alive(horse.pid), 5, message="worker and horse to die")
    return time.monotonic()


def task_processes(task_id, *files):
    """Live processes working for a task: their command line names its id or one of its files,
    or they carry its id in their environment (a command's tool and whatever that started)."""
    words = [str(task_id), *(str(f) for f in files)]
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            line = " ".join(proc.cmdline())
            if any(word in line for word in words) or proc.environ().get("MEDIACRAFT_TASK_ID") == str(task_id):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def settled_after_crash(task_id, killed_at, statuses):
    """The task is found lost and retried or failed within CRASH_SETTLES_WITHIN seconds."""
    task = wait_status(Task(pk=task_id), statuses, CRASH_SETTLES_WITHIN)
    assert time.monotonic() - killed_at < CRASH_SETTLES_WITHIN
    assert task.error_code == "worker_lost", (task.status, task.error_code, task.error_detail)
    return task


def no_leftover_processes(task_id, *files, within=5):
    try:
        wait_for(lambda: not task_processes(task_id, *files), within, message="the task's processes to be gone")
    except AssertionError:
        raise AssertionError([cmdline(p) for p in task_processes(task_id, *files)]) from None


def outputs(task_id):
    return list(StoredFile.objects.filter(task_id=task_id, role=StoredFile.Role.OUTPUT))


def files_in_output(task_id):
    folder = task_work_dir(task_id) / "output"
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) \
        if folder.exists() else []


def terminal_entries(task):
    return [e["status"] for e in task.timeline if e.get("status") in Task.TERMINAL]


def upload(client, kind, paths, **params):
    handles = [open(p, "rb") for p in paths]
    try:
        response = client.post("/api/tasks/", {"kind": kind, "params": json.dumps(params), "files": handles})
    finally:
        for handle in handles:
            handle.close()
    assert response.status_code == 201, response.content
    task_id = response.json()["task_id"]
    return task_id, [f.abs_path for f in StoredFile.objects.filter(task_id=task_id, role=StoredFile.Role.INPUT)]


def encoding(task_id, *files):
    """Early in an encode that lasts seconds: some progress, far from done, and ffmpeg at work."""
    task = Task.objects.get(pk=task_id)
    return task.status == S.RUNNING and 1 < task.progress < 40 and any(
        "ffmpeg" in p.name() for p in task_processes(task_id, *files))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Long enough that an encode lasts seconds (delogo: ~1.5 s a minute of this when idle), so a
    tool that outlived its horse would still be at work when the test looks."""
    root = tmp_path_factory.mktemp("fault-clips")
    return {
        "long": make_video(root / "long clip.mp4", seconds=120),
        "a": make_video(root / "a.mp4", seconds=60, logo=False),
        "b": make_video(root / "b.mp4", seconds=60, logo=False, source="testsrc"),
    }


# --- 1. kill -9 of a worker in the middle of each kind ------------------------------------------

def test_it_fails_a_command_whose_worker_crashed_and_leaves_no_process_or_file(workers, scheduler, alice, tool):
    (worker,) = workers(1)
    scheduler()
    task = submit_command(alice, steps=600, sleep=0.05, child=True, write="partial.txt")  # 1 attempt
    child = wait_for(lambda: _read_pid(task), 15, message="the tool's child")
    wait_for(lambda: Task.objects.get(pk=task.pk).progress > 0, 15, message="progress")
    assert len(task_processes(task.pk)) == 2  # the tool and the child it started
    killed_at = crash(worker)

    task = settled_after_crash(task.pk, killed_at, [S.FAILED])
    assert task.attempts == 1 and terminal_entries(task) == ["failed"]
    no_leftover_processes(task.pk)
    assert not _alive(child)
    assert not (task_work_dir(task.pk) / "output").exists()  # partial.txt and child.pid went with it
    assert outputs(task.pk) == []


def test_it_retries_a_watermark_whose_worker_crashed_and_gets_it_right(workers, scheduler, client, clips):
    (worker,) = workers(1)
    scheduler()
    task_id, inputs = upload(client, "watermark", [clips["long"]], rects=[LOGO])
    wait_for(lambda: encoding(task_id, *inputs), 30, message="ffmpeg mid-encode")
    killed_at = crash(worker)

    no_leftover_processes(task_id, *inputs, within=1.5)  # ffmpeg did not outlive its horse
    settled_after_crash(task_id, killed_at, [S.RETRYING, S.QUEUED])
    workers(1)
    task = wait_status(Task(pk=task_id), Task.TERMINAL, 90)
    assert task.status == S.COMPLETED, (task.error_code, task.error_detail)
    assert task.attempts == 2 and terminal_entries(task) == ["completed"]
    (output,) = outputs(task_id)
    assert files_in_output(task_id) == [output.stored_name] == ["long clip-nologo.mp4"]
    result, source = info(output.abs_path), info(clips["long"])
    assert abs(result["duration"] - source["duration"]) < 0.1 and (result["width"], result["height"]) == (320, 240)
    assert redness(frame_rgb(output.abs_path, 60, 320, 240), 320, LOGO) < 60  # removed late in the video too
    no_leftover_processes(task_id, *inputs)


def test_it_fails_a_merge_whose_worker_crashed_without_half_a_result(workers, scheduler, client, clips, settings):
    settings.MEDIACRAFT_MAX_ATTEMPTS = 1
    (worker,) = workers(1)
    scheduler()
    task_id, inputs = upload(client, "merge", [clips["a"], clips["b"]], mode="reencode")
    wait_for(lambda: encoding(task_id, *inputs), 30, message="ffmpeg mid-encode")
    assert "output.mp4.part" in files_in_output(task_id)
    killed_at = crash(worker)
    no_leftover_processes(task_id, *inputs, within=1.5)  # ffmpeg did not outlive its horse

    task = settled_after_crash(task_id, killed_at, [S.FAILED])
    assert terminal_entries(task) == ["failed"]
    assert not (task_work_dir(task_id) / "output").exists() and outputs(task_id) == []
    assert all(path.is_file() for path in inputs)  # the inputs stay, for a retry by hand


def test_it_retries_a_download_whose_worker_crashed_and_leaves_nothing_in_aria2(
        workers, scheduler, aria2d, file_server, alice):
    data = generated(6 * MB, 70)
    url = file_server.add("/faults/crash.bin", data, rate=MB)
    env = {**aria2d.env, "MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE": "true"}
    (worker,) = workers(1, **env)
    scheduler(**env)
    task = services.task_submit(owner=alice, kind="download", params={"urls": [url], "connections": 2})
    wait_for(lambda: Task.objects.get(pk=task.pk).stats.get("downloaded_size", 0) > 200_000, 30,
             message="some bytes to arrive")
    assert aria2d.downloads_of(task.pk)
    killed_at = crash(worker)

    settled_after_crash(task.pk, killed_at, [S.RETRYING, S.QUEUED])
    wait_for(lambda: aria2d.downloads_of(task.pk) == [], 10, message="aria2 to forget the dead run's download")
    workers(1, **env)
    task = wait_status(task, Task.TERMINAL, 60)
    assert task.status == S.COMPLETED, (task.error_code, task.error_detail)
    assert task.attempts == 2 and terminal_entries(task) == ["completed"]
    (output,) = outputs(task.pk)
    assert output.sha256 == sha256(data) and output.abs_path.read_bytes() == data
    assert files_in_output(task.pk) == [f"0/{output.stored_name}"]  # no .aria2 control file, no partial
    assert aria2d.downloads_of(task.pk) == []


def test_it_retries_a_strm_sync_whose_worker_crashed_leaving_no_temporary_file(
        workers, scheduler, alice, dav_factory, tmp_path, settings):
    root = tmp_path / "allowed"
    source, library = root / "source", root / "library"
    library.mkdir(parents=True)
    settings.MEDIACRAFT_STRM_ROOTS = [str(root)]
    media = [f"Show {i} #/ep {i} & 中.mkv" for i in range(40)]
    for rel in media:
        write(source / rel, b"\x1aE\xdf\xa3")
    dav = dav_factory(source)
    dav.delay = 0.06  # per listing: a full sync takes seconds
    profile = make_profile(name="crash", source_type="webdav", source_url=dav.url, source_username=DAV_USER,
                           source_password=DAV_PASSWORD, target_path=str(library), listing_concurrency=1)
    env = {"MEDIACRAFT_STRM_ROOTS": str(root)}
    (worker,) = workers(1, **env)
    scheduler(**env)
    task = services.task_submit(owner=alice, kind="strm_sync", params={"profile": "crash", "sync_type": "full"})
    wait_for(lambda: len(files_under(library)) >= 5, 30, message="some files written")
    killed_at = crash(worker)

    settled_after_crash(task.pk, killed_at, [S.RETRYING, S.QUEUED])
    no_leftover_processes(task.pk)
    workers(1, **env)
    task = wait_status(task, Task.TERMINAL, 60)
    assert task.status == S.COMPLETED, (task.error_code, task.error_detail)
    assert task.attempts == 2 and terminal_entries(task) == ["completed"]
    written = files_under(library)
    assert written == {rel[: -len(".mkv")] + ".strm" for rel in media}  # no .mcsync-*.tmp among them
    for rel in media:
        assert (library / (rel[: -len(".mkv")] + ".strm")).read_text() == expected_url(dav.url, rel)
    profile.refresh_from_db()
    assert profile.running_task_id is None


@pytest.fixture
def qbt(tmp_path):
    if QBT_BINARY is None:
        pytest.skip(SKIP_REASON)
    instance = QbtInstance(tmp_path / "qbt")
    try:
        yield instance.start()
    finally:
        instance.stop()


def test_it_retries_a_calibration_whose_worker_crashed_and_removes_the_dead_runs_probe(
        workers, scheduler, alice, qbt, tmp_path):
    from tests.test_calibration_qbt import NO_PEERS, library, make_connection, probe_files

    make_connection(qbt.url)
    owned = library(qbt, tmp_path / "data", "Owned")
    nobody = "c" * 40
    (worker,) = workers(1)
    scheduler()
    task = services.task_submit(owner=alice, kind="calibration", timeout=5,
                                params={"hashes": [owned.v1, NO_PEERS.format(nobody)]})
    wait_for(lambda: qbt.torrent(nobody), 20, message="the probe")
    killed_at = crash(worker)

    settled_after_crash(task.pk, killed_at, [S.RETRYING, S.QUEUED])
    workers(1)
    task = wait_status(task, Task.TERMINAL, 60)
    assert task.status == S.COMPLETED, (task.error_code, task.error_detail)
    assert task.attempts == 2 and terminal_entries(task) == ["completed"]
    items = {item["info_hash"]: item["status"] for item in task.result["items"]}
    assert items == {owned.v1: "found", nobody: "timeout"}
    assert [t["hash"] for t in qbt.torrents()] == [owned.id] and probe_files(qbt) == []


# --- 2. kill -9 of Redis, then of the whole serve -------------------------------------------------

def listing(visitor):
    status, body = visitor.call("GET", "/api/tasks/?page_size=100")
    assert status == 200, body
    return {t["task_id"]: t for t in body["items"]}


def server_rows(server):
    """{task id: (status, timeline)} straight from serve's own SQLite database."""
    with sqlite3.connect(f"file:{server.var_dir / 'db.sqlite3'}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT id, status, timeline FROM tasks_task").fetchall()
    return {str(uuid.UUID(row[0])): (row[1], json.loads(row[2])) for row in rows}


def fill_every_state(server, visitors, seconds):
    """Three tasks per visitor: with 2 workers and limits of 2 per visitor and 4 in all, 2 run,
    2 wait queued and 5 wait pending. Returns {task id: visitor} once that is so (read from the
    database, so the caller can strike at once)."""
    owners = {}
    for visitor in visitors:
        for _ in range(3):
            status, body = visitor.submit_countdown(seconds)
            assert status == 201, body
            owners[body["task_id"]] = visitor

    def every_state():
        states = {k: status for k, (status, _timeline) in server_rows(server).items() if k in owners}
        return Counter(states.values()) == {S.RUNNING: 2, S.QUEUED: 2, S.PENDING: 5} and states

    return owners, poll(every_state, 30, "2 tasks running, 2 queued and 5 pending")


def all_settled(owners, before, timeout):
    """Every task ends properly: one that had not started completes; one that was running
    completes or fails as lost (countdown allows one attempt). None is lost or stays running."""
    seen = {}

    def done():
        seen.clear()
        for visitor in set(owners.values()):
            seen.update({k: t for k, t in listing(visitor).items() if k in owners})
        return len(seen) == len(owners) and all(t["status"] in Task.TERMINAL for t in seen.values())

    try:
        poll(done, timeout, "every task to end")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {[(before[k], t['status']) for k, t in seen.items()]}") from None
    for task_id, task in seen.items():
        if before[task_id] in (S.PENDING, S.QUEUED):
            assert task["status"] == S.COMPLETED, (before[task_id], task)
        else:
            assert before[task_id] == S.RUNNING
            assert task["status"] == S.COMPLETED or (
                task["status"] == S.FAILED and task["error"]["code"] == "worker_lost"), task
    return seen


def test_it_loses_no_task_when_redis_and_then_serve_are_killed_with_tasks_in_every_state(make_server):
    server = make_server(workers=2, MEDIACRAFT_HEARTBEAT_SECONDS=1, MEDIACRAFT_LOST_AFTER_SECONDS=4,
                         MEDIACRAFT_RECONCILE_SECONDS=1, MEDIACRAFT_GLOBAL_CONCURRENCY=4,
                         MEDIACRAFT_USER_CONCURRENCY=2)
    server.migrate()
    server.start()
    server.wait_healthy(workers=2)
    visitors = [Visitor(server) for _ in range(3)]

    # kill -9 Redis alone; serve starts it again (from its append-only file).
    owners, before = fill_every_state(server, visitors, 3)
    (redis_server,) = server.redis_servers()
    redis_server.kill()
    poll(lambda: [p for p in server.redis_servers() if p.pid != redis_server.pid], 15, "a new redis-server")
    all_settled(owners, before, 60)

    # kill -9 serve and everything under it, then start it again.
    owners, _before = fill_every_state(server, visitors, 3)
    server.descendants()
    server.proc.kill()
    server.proc.wait(timeout=5)
    poll(lambda: not [p for p in server.seen.values() if alive(p)], 20, "everything to die with serve")
    before = {k: status for k, (status, _timeline) in server_rows(server).items() if k in owners}
    assert Counter(before.values()) == {S.RUNNING: 2, S.QUEUED: 2, S.PENDING: 5}, before
    server.start()
    server.wait_healthy(workers=2)
    final = all_settled(owners, before, 60)
    assert [final[k]["status"] for k, status in before.items() if status == S.RUNNING] == [S.FAILED] * 2

    rows = server_rows(server)
    assert len(rows) == 18 and [len(listing(v)) for v in visitors] == [6, 6, 6]
    for status, timeline in rows.values():
        assert [e["status"] for e in timeline if e.get("status") in Task.TERMINAL] == [status], timeline


# --- 3. a storm of cancels ---------------------------------------------------------------------------

USER_LIMIT, GLOBAL_LIMIT = 2, 4


class Sampler(threading.Thread):
    """Counts active (queued + running) tasks per owner and in all, as often as it can."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.samples = self.max_user = self.max_global = 0
        self.broken = []

    def run(self):
        try:
            while not self.stop.is_set():
                owners = Counter(Task.objects.filter(status__in=Task.ACTIVE).values_list("owner_id", flat=True))
                total = sum(owners.values())
                self.samples += 1
                self.max_global = max(self.max_global, total)
                busiest = max(owners.values(), default=0)
                self.max_user = max(self.max_user, busiest)
                if total > GLOBAL_LIMIT or busiest > USER_LIMIT:
                    self.broken.append(dict(owners))
                time.sleep(0.005)
        finally:
            connection.close()


def cancel(task_id, client, through_api):
    """Cancel through the HTTP API or the services; the status it answers ("too late" when the
    task had already ended)."""
    if through_api:
        response = client.post(f"/api/tasks/{task_id}/cancel/")
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "not_cancellable"
            return "too late"
        assert response.status_code == 200, response.content
        return response.json()["status"]
    try:
        return services.task_cancel(task=Task.objects.get(pk=task_id)).status
    except ApiError as exc:
        assert exc.code == "not_cancellable"
        return "too late"


def tools_of(task_ids):
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and "fake_tool.py" in " ".join(proc.cmdline()) and \
                    proc.environ().get("MEDIACRAFT_TASK_ID") in task_ids:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def test_it_weathers_a_storm_of_cancels_keeping_every_limit(workers, scheduler, tool, django_user_model,
                                                             client_for, settings):
    started = time.monotonic()
    settings.MEDIACRAFT_USER_CONCURRENCY, settings.MEDIACRAFT_GLOBAL_CONCURRENCY = USER_LIMIT, GLOBAL_LIMIT
    limits = {"MEDIACRAFT_USER_CONCURRENCY": USER_LIMIT, "MEDIACRAFT_GLOBAL_CONCURRENCY": GLOBAL_LIMIT}
    visitors = [make_user(django_user_model, f"visitor{i}", operator=True) for i in range(10)]
    clients = {user.pk: client_for(user) for user in visitors}
    workers(2, **limits)
    scheduler(**limits)
    rng = random.Random(7)
    doomed = set(rng.sample(range(200), 100))
    ids, pending_cancels, answers = [], [], {}

    def cancel_due():
        """Send the cancels that are due: at a moment chosen in advance, or once the task runs."""
        now = time.monotonic()
        watched = [task_id for _when, task_id, _owner, once_running in pending_cancels if once_running]
        waiting = {str(pk) for pk in Task.objects.filter(pk__in=watched, status__in=[S.PENDING, S.QUEUED])
                   .values_list("pk", flat=True)}
        for entry in list(pending_cancels):
            when, task_id, owner_id, once_running = entry
            if when > now or (once_running and task_id in waiting and now < when + 30):
                continue
            pending_cancels.remove(entry)
            answers[task_id] = cancel(task_id, clients[owner_id], through_api=len(answers) % 2)

    sampler = Sampler()
    sampler.start()
    try:
        for n in range(200):
            owner = visitors[n // 5 % 10]  # in bursts of five, so one visitor can want more than its share
            # Cancelled at once (pending or queued), after a while (queued, running or done), or once running.
            delay = rng.choice([0, 0, 0.05, 0.2, 0.5, 1, 2, 4, "running", "running"]) if n in doomed else None
            steps = 6 if delay == "running" else 1  # a third of a second of running: time to be cancelled
            task = submit_command(owner, steps=steps, sleep=0.05, write="out.txt")
            ids.append(str(task.pk))
            if delay is not None:
                once_running = delay == "running"
                when = time.monotonic() + (0 if once_running else delay)
                pending_cancels.append((when, str(task.pk), task.owner_id, once_running))
            cancel_due()
            time.sleep(rng.uniform(0, 0.02))
        while pending_cancels:
            cancel_due()
            time.sleep(0.01)
        wait_for(lambda: not Task.objects.filter(pk__in=ids).exclude(status__in=Task.TERMINAL).exists(), 80,
                 interval=0.2, message="every task to end")
    finally:
        sampler.stop.set()
        sampler.join(5)

    final = {str(t.pk): t for t in Task.objects.filter(pk__in=ids)}
    assert len(final) == 200 and len(answers) == 100
    for task_id, task in final.items():
        assert len(terminal_entries(task)) == 1 and task.timeline[-1]["status"] == task.status, task.timeline
        answer = answers.get(task_id)
        if answer in (None, "too late", S.COMPLETED):  # not cancelled, or ended just before the cancel
            assert task.status == S.COMPLETED, (task.status, task.error_code, task.error_detail)
        elif answer == S.CANCELLED:
            assert task.status == S.CANCELLED, task.timeline
        else:  # asked to stop while running: cancelled, unless it finished first
            assert answer == S.RUNNING and task.status in (S.CANCELLED, S.COMPLETED), (answer, task.timeline)
        # Files: a cancelled task leaves none; a completed one has what its tool wrote.
        assert files_in_output(task_id) == (["out.txt"] if task.status == S.COMPLETED else []), task.status
    statuses = Counter(t.status for t in final.values())
    assert statuses[S.CANCELLED] >= 50 and statuses[S.COMPLETED] >= 100, statuses
    assert S.RUNNING in answers.values()  # some cancels did hit running tasks
    wait_for(lambda: not tools_of(set(ids)), 5, message="no tool left running")
    # The limits held at every sample, and the storm did fill the slots.
    assert sampler.broken == [], f"limits broken: {sampler.broken[:5]}"
    assert sampler.samples > 100 and (sampler.max_user, sampler.max_global) == (USER_LIMIT, GLOBAL_LIMIT)
    assert time.monotonic() - started < 90


# --- 4. a full disk while the result is written ---------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A media root whose task folders live on a 2 MB tmpfs (uploads stay on the real disk)."""
    media = tmp_path / "media"
    tasks = media / "tasks"
    tasks.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(tasks)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs ({mounted.stderr.strip() or mounted.returncode}), so the "
                    "full-disk test is SKIPPED: run it as root, or where mount -t tmpfs is allowed")
    try:
        yield media
    finally:
        subprocess.run(["umount", "-l", str(tasks)], check=False)


def test_it_fails_clearly_when_the_disk_fills_up_while_writing_the_result(workers, client, clips, small_disk,
                                                                          settings):
    settings.MEDIA_ROOT = small_disk
    settings.MEDIACRAFT_MIN_FREE_DISK_MB = 0
    workers(1, MEDIACRAFT_MEDIA_ROOT=small_disk)
    task_id, inputs = upload(client, "watermark", [clips["a"]], rects=[LOGO])  # ~3.5 MB of result
    task = wait_status(Task(pk=task_id), Task.TERMINAL, 60)
    assert task.status == S.FAILED and task.attempts == 1
    assert task.error_code == "disk_full", (task.error_code, task.error_detail)
    assert "No space left on device" in task.error_detail
    body = client.get(f"/api/tasks/{task_id}/").json()
    assert body["error"]["message"] == "The server ran out of disk space while writing the result."
    chinese = client.get(f"/api/tasks/{task_id}/", HTTP_ACCEPT_LANGUAGE="zh-hans").json()["error"]["message"]
    assert chinese != body["error"]["message"] and "磁盘" in chinese
    # Nothing half-written is left, and the space is free again.
    assert outputs(task_id) == [] and not (task_work_dir(task_id) / "output").exists()
    assert shutil.disk_usage(small_disk / "tasks").used < 100 * 1024
    no_leftover_processes(task_id, *inputs)

    # MediaCraft's own write (removelogo's mask) on a disk already full: the same clear error.
    fill(small_disk / "tasks" / "filler")
    task_id, _inputs = upload(client, "watermark", [clips["a"]], rects=[LOGO], method="removelogo")
    task = wait_status(Task(pk=task_id), Task.TERMINAL, 60)
    assert (task.status, task.error_code) == (S.FAILED, "disk_full"), (task.error_code, task.error_detail)
    assert "No space left on device" in task.error_detail and "Traceback" not in task.error_detail
    assert outputs(task_id) == [] and not (task_work_dir(task_id) / "output").exists()
    with translation.override("zh-hans"):
        assert render(ERRORS, "disk_full") == chinese


def fill(path):
    """Write until the disk is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
