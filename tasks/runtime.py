"""What a running task gets inside the RQ work horse: its context, a progress reporter,
a subprocess runner and a watchdog. Imported only by tasks.jobs, inside the job."""

import collections
import dataclasses
import functools
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from tasks import events
from tasks.errors import TaskAborted, TaskError
from tasks.models import Task
from tasks.selectors import task_owner_id

log = logging.getLogger(__name__)

SAFE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")


def task_work_dir(task_id):
    return Path(settings.MEDIA_ROOT) / "tasks" / str(task_id)


class EventSender:
    """Sends a job's progress events (in the reporter's lock, so in order) and counts them;
    an event that cannot reach Redis is logged, never fails the job."""

    def __init__(self):
        self.sent = 0

    def send(self, snapshot):
        try:
            events.send_snapshot(snapshot["owner_id"], snapshot)
        except events.SEND_ERRORS:
            log.warning("progress event not delivered", exc_info=True)
            return
        self.sent += 1

    def close(self):
        if self.sent:
            from tasks.metrics import incr

            incr("mediacraft_progress_events_total", amount=self.sent)


class ProgressReporter:
    """Throttles updates: the ORM at most every PROGRESS_DB_INTERVAL s, events at most every
    PROGRESS_EVENT_INTERVAL s; a stage change and the final update always go through."""

    def __init__(self, task, sender):
        self.task = task
        self.sender = sender
        self.lock = threading.Lock()
        self.last_db = self.last_event = 0.0
        self.dirty_db = self.dirty_event = False
        self.started = time.monotonic()

    @functools.cached_property
    def files(self):
        """Read at the first event, so a task that sends none never reads them. Outputs appear
        only at the end."""
        return events.task_files(self.task.pk)

    def update(self, percent=None, *, stage=None, code=None, params=None, stats=None):
        with self.lock:
            task = self.task
            stage_changed = stage is not None and stage != task.stage
            if percent is not None:
                task.progress = round(min(100.0, max(0.0, float(percent))), 2)
            if stage_changed:
                task.stage = stage
                task.timeline = [*task.timeline, {"stage": stage, "at": timezone.now().isoformat()}]
            if code is not None:
                task.message_code, task.message_params = code, params or {}
            if stats is not None:
                task.stats = dict(stats)
            self._estimate_eta()
            self.dirty_db = self.dirty_event = True
            self._flush(force=stage_changed)

    def follow_owner(self, owner_id):
        """Events go to the owner's group: follow a visitor merged into an account meanwhile
        (the watchdog reads the owner with every heartbeat)."""
        with self.lock:
            self.task.owner_id = owner_id

    def _estimate_eta(self):
        stats = self.task.stats
        if "eta_seconds" in stats and stats.get("eta_source") != "engine":
            return
        elapsed, done = time.monotonic() - self.started, self.task.progress
        if 1 <= done < 100 and elapsed > 1:
            self.task.stats = {**stats, "eta_seconds": round(elapsed * (100 - done) / done), "eta_source": "engine"}

    def _flush(self, force=False):
        now = time.monotonic()
        write = self.dirty_db and (force or now - self.last_db >= settings.MEDIACRAFT_PROGRESS_DB_INTERVAL)
        send = self.dirty_event and (force or now - self.last_event >= settings.MEDIACRAFT_PROGRESS_EVENT_INTERVAL)
        # A stage is a new timeline entry: stored before anyone sees it. Plain progress goes out
        # first, its write right after: a status change that overtakes it has a longer timeline,
        # so the pages drop it as stale (tasks.js isStale).
        if send and not force:
            self._send(now)
        if write:
            self._write(now)
        if send and force:
            self._send(now)

    def _write(self, now):
        task = self.task
        updated = Task.objects.filter(pk=task.pk, status=Task.Status.RUNNING).update(
            progress=task.progress, stage=task.stage, message_code=task.message_code,
            message_params=task.message_params, stats=task.stats, timeline=task.timeline,
        )
        if not updated:
            raise TaskAborted(str(task.pk))
        self.last_db, self.dirty_db = now, False

    def _send(self, now):
        self.sender.send(events.task_snapshot(self.task, self.files))
        self.last_event, self.dirty_event = now, False

    def flush_pending(self):
        """Called by the watchdog so a throttled last update is not held back for long."""
        with self.lock:
            self._flush(force=True)


@dataclasses.dataclass
class RunResult:
    returncode: int
    stderr_tail: str


class TaskContext:
    def __init__(self, task, reporter):
        self.task = task
        self.task_id = str(task.pk)
        self.kind = task.kind
        self.params = task.params
        self.attempt = task.attempts
        self.timeout = task.timeout
        self.work_dir = task_work_dir(task.pk)
        self.output_dir = self.work_dir / "output"
        self._reporter = reporter
        self._procs = set()
        self.outputs = []

    @property
    def owner_id(self):
        """Read afresh: a visitor who logs in while the task runs becomes the account."""
        return task_owner_id(task_id=self.task.pk) or self.task.owner_id

    @functools.cached_property
    def input_files(self):
        """The task's input StoredFiles, in the order the user gave."""
        from storage.models import StoredFile
        from storage.selectors import files_of_task

        return files_of_task(self.task.pk, StoredFile.Role.INPUT)

    @property
    def input_paths(self):
        return [f.abs_path for f in self.input_files]

    def add_output(self, path, name):
        """Register a finished result file (inside output_dir) as the task's output."""
        from storage.services import file_register_output

        stored = file_register_output(task=self.task, path=path, name=name)
        self.outputs.append(stored)
        return stored

    def progress(self, percent=None, *, stage=None, code=None, params=None, stats=None):
        self._reporter.update(percent, stage=stage, code=code, params=params, stats=stats)

    def run(self, argv, *, cwd=None, env=None, on_stdout=None, on_stderr=None, tail_lines=40):
        """Run a program without a shell, in the work horse's process group (so RQ's stop kills
        it too), calling on_stdout for each stdout line in this thread. When the program exits,
        whatever it left running is killed; any exception kills its whole tree."""
        guard_process_group()
        full_env = {k: os.environ[k] for k in SAFE_ENV if k in os.environ}
        full_env.update(env or {})
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace", bufsize=1,
            )
        except OSError as exc:
            raise TaskError("command_not_started", {"reason": exc.strerror or str(exc)}, detail=f"{argv[0]}: {exc}") from None
        self._procs.add(proc)
        lines = queue.SimpleQueue()
        tail = collections.deque(maxlen=tail_lines)

        def pump(stream, name):
            for line in stream:
                lines.put((name, line.rstrip("\n")))
            lines.put((name, None))

        readers = [threading.Thread(target=pump, args=(s, n), daemon=True)
                   for s, n in ((proc.stdout, "out"), (proc.stderr, "err"))]
        for reader in readers:
            reader.start()
        open_streams, exited_at = 2, None
        try:
            while open_streams:
                try:
                    name, line = lines.get(timeout=0.2)
                except queue.Empty:
                    if exited_at is None and proc.poll() is not None:
                        exited_at = time.monotonic()
                    if exited_at is not None and time.monotonic() - exited_at > 1:
                        kill_descendants()  # a leftover daemon holds the pipes open
                    continue
                if line is None:
                    open_streams -= 1
                elif name == "out":
                    if on_stdout:
                        on_stdout(line)
                else:
                    tail.append(line)
                    if on_stderr:
                        on_stderr(line)
            proc.wait()
        except BaseException:
            kill_tree(proc)
            raise
        finally:
            self._procs.discard(proc)
        kill_descendants()
        return RunResult(proc.returncode, "\n".join(tail))

    def kill_children(self):
        for proc in list(self._procs):
            kill_tree(proc)
        kill_descendants()


def guard_process_group():
    """Start the guard below once per work horse (it forks a shell: not for kinds that start nothing)."""
    return _group_guard(os.getpid())


@functools.cache
def _group_guard(pid):
    """Kill the work horse's whole process group as soon as the horse is gone, however it went:
    killed with its worker (nobody is left to run kill_tree or the watchdog), the tools it ran
    and what they left would run on. A shell in the group waits for the end of a pipe that only
    the horse holds. Started before become_subreaper, and its parent shell exits at once, so it
    is no descendant of the horse and kill_descendants leaves it alone. Returns the pipe's end."""
    if os.getpgrp() != os.getpid():
        return None  # not a forked work horse leading its own group: nothing of ours to kill
    read_end, write_end = os.pipe()
    try:
        subprocess.run(["/bin/sh", "-c", "exec 3<&0; (read _ <&3; kill -KILL 0) >/dev/null 2>&1 &"],
                       stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.SubprocessError):
        log.warning("could not start the process group guard", exc_info=True)
    finally:
        os.close(read_end)
    return write_end


@functools.cache
def libc():
    """The C library, for prctl (Linux). Loaded once, before any fork (tasks.worker.preload)."""
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _prctl(option, value):
    try:
        return libc().prctl(option, value, 0, 0, 0) == 0
    except AttributeError:  # no libc, or no prctl: not Linux
        return False


def become_subreaper():
    """Orphans of the tools we run re-parent to this process, so kill_descendants finds them."""
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER


def die_with_parent(parent):
    """Have the kernel kill this work horse the moment its worker (parent) dies; the process
    group's guard then kills what the horse started. False where that is not possible."""
    if not _prctl(1, signal.SIGKILL):  # PR_SET_PDEATHSIG
        return False
    if os.getppid() != parent:  # it died before the request
        os.killpg(os.getpgrp(), signal.SIGKILL)
    return True


def kill_descendants():
    import psutil

    if has_children():  # spares the scan of every process on the machine after most tasks
        _kill_all(psutil.Process().children(recursive=True))


def has_children():
    """Whether this process has any child (running or a zombie), without reaping one."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WSTOPPED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def kill_tree(proc):
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        _kill_all(parent.children(recursive=True) + [parent])
    except psutil.NoSuchProcess:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _kill_all(victims):
    import psutil

    for victim in victims:
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=2)


class Watchdog(threading.Thread):
    """Beats the task's heartbeat, flushes held-back progress, and kills the horse's whole
    process group when its worker died or the task stopped being running (a lost stop command)."""

    def __init__(self, task_id, reporter):
        super().__init__(name="watchdog", daemon=True)
        self.task_id = task_id
        self.reporter = reporter
        self.parent = os.getppid()
        self.stopped = threading.Event()

    def start(self):
        super().start()
        # The orphan check runs apart: a database call of the heartbeat can block for up to the
        # SQLite busy timeout, and a horse whose worker is gone must not live that long. The
        # kernel does it where it can (and a thread costs a short task's horse more than its job).
        if not die_with_parent(self.parent):
            threading.Thread(target=self.guard_parent, name="orphan-guard", daemon=True).start()

    def guard_parent(self):
        while not self.stopped.wait(0.2):
            if os.getppid() != self.parent:
                self.die("worker process is gone")

    def run(self):
        beat = settings.MEDIACRAFT_HEARTBEAT_SECONDS
        last_beat = time.monotonic()
        try:
            while not self.stopped.wait(0.5):
                try:
                    self.reporter.flush_pending()
                except TaskAborted:
                    self.die("task is no longer running")
                if time.monotonic() - last_beat >= beat:
                    last_beat = time.monotonic()
                    self.heartbeat()
        finally:
            connection.close()

    def heartbeat(self):
        close_old_connections()
        now = timezone.now()
        Task.objects.filter(pk=self.task_id, status=Task.Status.RUNNING).update(heartbeat_at=now)
        row = Task.objects.filter(pk=self.task_id).values_list("status", "cancel_requested_at", "owner_id").first()
        if row is not None:
            self.reporter.follow_owner(row[2])
        if row is None or row[0] != Task.Status.RUNNING:
            self.die("task is no longer running")
        elif row[1] and (now - row[1]).total_seconds() > 2:
            self.die("cancel requested but the stop command did not arrive")

    def die(self, why):
        if self.stopped.is_set():
            return
        log.warning("task %s: %s; killing the work horse", self.task_id, why)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    def stop(self):
        self.stopped.set()
