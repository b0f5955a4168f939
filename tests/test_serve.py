"""`manage.py serve`, run for real: embedded Redis, workers, scheduler and daphne as subprocesses."""

import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
import redis

from mediacraft.launcher import Launcher, LauncherError, parse_bind

ROOT = Path(__file__).resolve().parent.parent
MANAGE = str(ROOT / "manage.py")

pytestmark = pytest.mark.timeout(90)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(0.1)


def alive(proc):
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def cmdline(proc):
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def group_members(pgid):
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and alive(proc):
                members.append(proc)
        except OSError:
            pass
    return members


class Server:
    """One `manage.py serve` subprocess on its own VAR_DIR, as a user would run it: no
    MEDIACRAFT_* or DATABASE_URL from the test session (its Redis, its test database)."""

    def __init__(self, var_dir, workers):
        self.var_dir = var_dir
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIACRAFT_")}
        self.env.pop("DATABASE_URL", None)
        self.env.update(MEDIACRAFT_VAR_DIR=str(var_dir), MEDIACRAFT_BIND=f"127.0.0.1:{self.port}",
                        MEDIACRAFT_WORKERS=str(workers), PYTHONUNBUFFERED="1")
        self.log_path = var_dir / "serve.log"
        self.proc = None
        self.seen = {}  # every descendant ever observed, for the finalizer
        self.started_at = time.time()

    def migrate(self):
        subprocess.run([sys.executable, MANAGE, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env,
                       check=True, timeout=60)

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, MANAGE, "serve"], cwd=ROOT, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.ps = psutil.Process(self.proc.pid)
        return self

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def descendants(self):
        try:
            found = self.ps.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for proc in found:
            self.seen.setdefault(proc.pid, proc)
        return [proc for proc in found if alive(proc)]

    def children_named(self, word):
        return [proc for proc in self.descendants() if proc.ppid() == self.proc.pid and word in cmdline(proc)]

    def redis_servers(self):
        return [proc for proc in self.descendants() if proc.name() == "redis-server"]

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")
        except (OSError, ValueError):
            return None, None

    def wait_healthy(self, workers=1, timeout=30):
        def healthy():
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}:\n{self.log()[-3000:]}"
            status, body = self.get("/healthz")
            return body if status == 200 and body["checks"]["workers"] >= workers else None

        try:
            return poll(healthy, timeout, "/healthz to answer 200")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log()[-3000:]}") from None

    def redis_client(self):
        return redis.Redis(unix_socket_path=str(self.var_dir / "redis" / "redis.sock"), socket_timeout=5)

    def cleanup(self):
        """Whatever happened in the test, leave nothing running."""
        if self.proc is not None and self.proc.poll() is None:
            self.descendants()
            self.proc.kill()
            self.proc.wait(timeout=10)
        leftovers = [proc for proc in self.seen.values() if alive(proc)]
        # Also anything started with this VAR_DIR that we never saw (e.g. orphaned early).
        for proc in psutil.process_iter(["create_time"]):
            try:
                if proc.info["create_time"] >= self.started_at - 1 and \
                        proc.environ().get("MEDIACRAFT_VAR_DIR") == str(self.var_dir):
                    leftovers.append(proc)
            except psutil.Error:
                pass
        for proc in leftovers:
            try:
                proc.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(leftovers, timeout=5)


class Visitor:
    """A browser-less visitor: a cookie jar, CSRF from the account endpoint, JSON in and out."""

    def __init__(self, server):
        import http.cookiejar

        self.server = server
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name):
        return next((c.value for c in self.jar if c.name == name), None)

    def call(self, method, path, body=None):
        if method != "GET" and self.cookie("csrftoken") is None:
            self.call("GET", "/api/account/")
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.server.port}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "X-CSRFToken": self.cookie("csrftoken") or ""},
        )
        try:
            with self.opener.open(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def submit_countdown(self, seconds, **extra):
        args = {"seconds": seconds, **extra}
        return self.call("POST", "/api/tasks/", {"kind": "command", "params": {"template": "countdown", "args": args}})

    def task(self, task_id):
        status, body = self.call("GET", f"/api/tasks/{task_id}/")
        assert status == 200, body
        return body

    def socket(self):
        import websocket

        ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.server.port}/ws/tasks/", timeout=10,
            cookie=f"sessionid={self.cookie('sessionid')}", origin=f"http://127.0.0.1:{self.server.port}",
        )
        hello = json.loads(ws.recv())
        assert hello == {"type": "hello", "authenticated": True, "language": "en"}, hello
        return ws


@pytest.fixture
def make_server():
    servers, dirs = [], []

    def make(workers=1, var_dir=None, **env):
        if var_dir is None:
            # Short, so the Redis socket path stays well under the 100-byte limit.
            var_dir = Path(tempfile.mkdtemp(prefix="mcs-", dir="/tmp"))
            dirs.append(var_dir)
        server = Server(var_dir, workers)
        server.env.update({k: str(v) for k, v in env.items()})
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.cleanup()
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(make_server):
    server = make_server(workers=2)
    server.migrate()
    server.start()
    server.wait_healthy(workers=2)
    return server


def test_it_starts_everything_with_redis_on_a_unix_socket_under_var_dir(server):
    status, body = server.get("/healthz")
    assert status == 200
    assert body["checks"] == {"database": "ok", "redis": "ok", "workers": 2}

    poll(lambda: f"MediaCraft is running at http://127.0.0.1:{server.port}/" in server.log(), 5, "the URL")
    assert "manage.py createsuperuser" in server.log()
    assert len(server.children_named("manage.py worker")) == 2
    assert len(server.children_named("taskscheduler")) == 1
    assert len(server.children_named("daphne")) == 1

    (redis_server,) = server.redis_servers()
    sock = server.var_dir / "redis" / "redis.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o700
    assert str(sock) in {conn.laddr for conn in redis_server.net_connections(kind="unix")}
    # --port 0: no TCP at all, so a Redis on 6379 (or anything else) is never in the way.
    assert redis_server.net_connections(kind="inet") == []
    assert server.redis_client().ping()

    # Each child leads its own session: a terminal's Ctrl-C reaches only serve.
    for child in server.ps.children():
        assert os.getsid(child.pid) == child.pid != os.getsid(server.proc.pid)


def test_it_restarts_a_killed_worker(server):
    before = {proc.pid for proc in server.children_named("manage.py worker")}
    victim = min(before)
    os.kill(victim, signal.SIGKILL)

    def replaced():
        now = {proc.pid for proc in server.children_named("manage.py worker")}
        return len(now) == 2 and victim not in now and now - before

    (new_pid,) = poll(replaced, 15, "a new worker")
    assert server.proc.poll() is None
    assert f"(pid {victim}) exited with signal SIGKILL; restarting in 1 s" in server.log()
    poll(lambda: re.search(rf"started worker-\d \(pid {new_pid}\)", server.log()), 5, "the restart to be logged")
    # Whatever the dead worker left in its process group (RQ's scheduler process) is gone too.
    poll(lambda: not group_members(victim), 5, "the killed worker's process group to be empty")


def test_it_restarts_a_killed_redis_with_its_data(server):
    client = server.redis_client()
    client.set("mediacraft:test:serve", "kept")  # in the AOF (page cache) once SET returns
    (old,) = server.redis_servers()
    old.kill()

    (new,) = poll(lambda: [p for p in server.redis_servers() if p.pid != old.pid], 15, "a new redis-server")
    assert f"redis (pid {old.pid}) exited with signal SIGKILL; restarting in 1 s" in server.log()
    poll(lambda: server.get("/healthz")[0] == 200, 15, "/healthz to answer 200 again")
    assert server.redis_client().get("mediacraft:test:serve") == b"kept"
    assert server.proc.poll() is None


def test_it_stops_everything_cleanly_on_sigterm(server):
    descendants = server.descendants()
    assert len(descendants) >= 5  # redis, scheduler, 2 workers, daphne

    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
    left = [proc for proc in descendants if alive(proc)]
    assert left == [], [cmdline(proc) for proc in left]
    assert "serve: stopped" in server.log()


def running_countdown(make_server, seconds):
    """A one-worker serve running a visitor's countdown of `seconds`."""
    server = make_server(workers=1)
    server.migrate()
    server.start()
    server.wait_healthy()
    visitor = Visitor(server)
    status, task = visitor.submit_countdown(seconds)
    assert status == 201, task
    poll(lambda: visitor.task(task["task_id"])["status"] == "running", 20, "the task to run")
    return server, visitor, task


def test_it_runs_an_interrupted_task_again_after_a_clean_restart(make_server):
    """Stopping serve (a deploy, a reboot) is nobody's failure: the running task starts again
    after the restart, its attempt refunded, and completes."""
    server, visitor, task = running_countdown(make_server, 4)
    descendants = server.descendants()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    assert not [proc for proc in descendants if alive(proc)]
    server.start()
    server.wait_healthy()
    done = poll(lambda: (t := visitor.task(task["task_id"]))["status"] in ("completed", "failed") and t, 40,
                "the interrupted task to finish")
    assert done["status"] == "completed" and done["attempts"] == 1, done
    assert done["result"]["counted"] == 4
    statuses = [entry["status"] for entry in done["timeline"] if "status" in entry]
    assert statuses == ["pending", "queued", "running", "retrying", "queued", "running", "completed"], statuses


def test_it_leaves_nothing_behind_when_killed(make_server):
    # A running task: its work horse and the tool it runs must die with serve too.
    server, visitor, task = running_countdown(make_server, 60)
    poll(lambda: any("countdown.py" in cmdline(p) for p in server.descendants()), 10, "the tool to start")
    descendants = server.descendants()

    server.proc.kill()
    server.proc.wait(timeout=5)
    poll(lambda: not [proc for proc in descendants if alive(proc)], 10, "all former descendants to exit")


def test_it_keeps_redis_data_across_restarts(make_server):
    server = make_server(workers=1)
    server.migrate()
    server.start()
    server.wait_healthy()
    server.redis_client().set("mediacraft:test:serve", "kept")
    # While it runs, a second serve on the same VAR_DIR (and so the same AOF) is refused.
    rival = make_server(workers=1, var_dir=server.var_dir)
    refused = subprocess.run([sys.executable, MANAGE, "serve"], cwd=ROOT, env=rival.env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1
    assert "Another `manage.py serve` is running" in refused.stderr
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0
    assert (server.var_dir / "redis" / "appendonly.aof").stat().st_size > 0

    again = make_server(workers=1, var_dir=server.var_dir)
    again.start()
    again.wait_healthy()
    assert again.redis_client().get("mediacraft:test:serve") == b"kept"
    again.proc.send_signal(signal.SIGTERM)
    assert again.proc.wait(timeout=10) == 0


@pytest.mark.parametrize("bind, expected", [
    ("127.0.0.1:8000", ("127.0.0.1", 8000)),
    ("[::1]:8001", ("::1", 8001)),
    ("0.0.0.0:8002", ("0.0.0.0", 8002)),
])
def test_it_parses_bind_addresses(bind, expected):
    assert parse_bind(bind) == expected


@pytest.mark.parametrize("bind", ["8000", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ":8000"])
def test_it_rejects_bad_bind_addresses(bind):
    with pytest.raises(LauncherError, match="MEDIACRAFT_BIND"):
        parse_bind(bind)


def test_it_uses_tcp_on_loopback_when_the_socket_path_is_too_long(tmp_path):
    launcher = Launcher(base_dir=ROOT, var_dir=tmp_path / ("v" * 100), workers=0, bind="127.0.0.1:1",
                        stdout=io.StringIO())
    launcher.redis = launcher.redis_child()
    launcher.children.append(launcher.redis)
    assert "--unixsocket" not in launcher.redis.argv
    assert launcher.redis.argv[-2:] == ["--bind", "127.0.0.1"]
    assert launcher.redis_url.startswith("redis://127.0.0.1:")
    try:
        launcher.start(launcher.redis)
        launcher.wait_for_redis()
        assert redis.Redis.from_url(launcher.redis_url).ping()
    finally:
        process = launcher.redis.process
        launcher.stop()
    assert process.poll() == 0


def test_it_runs_visitors_tasks_end_to_end_and_survives_a_crash(make_server):
    """As a user would: several visitors over HTTP and WebSocket; cancel queued and running
    tasks; kill -9 a worker mid-task; kill -9 serve and restart it; every task ends properly."""
    server = make_server(workers=2, MEDIACRAFT_HEARTBEAT_SECONDS=1, MEDIACRAFT_LOST_AFTER_SECONDS=4,
                         MEDIACRAFT_RECONCILE_SECONDS=1, MEDIACRAFT_GLOBAL_CONCURRENCY=2)
    server.migrate()
    server.start()
    server.wait_healthy(workers=2)
    ann, ben, cat = Visitor(server), Visitor(server), Visitor(server)

    # ann: a short task, watched live over the WebSocket.
    status, short = ann.submit_countdown(2)
    assert status == 201, short
    ws = ann.socket()
    seen = []
    while not seen or seen[-1]["status"] != "completed":
        message = json.loads(ws.recv())
        if message["type"] == "task":
            assert message["task"]["task_id"] == short["task_id"]
            seen.append(message["task"])
    assert "running" in [t["status"] for t in seen] and seen[-1]["result"]["counted"] == 2

    # ben: one running and one waiting behind his per-user limit; both cancelled.
    _, running = ben.submit_countdown(60)
    _, waiting = ben.submit_countdown(60)
    poll(lambda: ben.task(running["task_id"])["status"] == "running", 20, "ben's first task to run")
    assert ben.task(waiting["task_id"])["status"] == "pending"
    assert "1 task running" in ben.task(waiting["task_id"])["message"]
    assert ben.call("POST", f"/api/tasks/{waiting['task_id']}/cancel/")[1]["status"] == "cancelled"
    ben.call("POST", f"/api/tasks/{running['task_id']}/cancel/")
    poll(lambda: ben.task(running["task_id"])["status"] == "cancelled", 2.5, "ben's running task to be cancelled")
    assert not any("countdown.py" in cmdline(p) and "60" in cmdline(p) for p in server.descendants())
    assert ann.call("GET", f"/api/tasks/{running['task_id']}/")[0] == 404  # not ann's

    # cat: kill -9 the worker running her task: it ends as "worker lost" (countdown allows one attempt).
    _, lost = cat.submit_countdown(60)
    poll(lambda: cat.task(lost["task_id"])["status"] == "running", 20, "cat's task to run")
    # The worker whose horse runs her countdown: the other may still be reaping ben's horse.
    worker = poll(lambda: next((w for w in server.children_named("manage.py worker")
                                if any("countdown.py" in cmdline(p) for p in w.children(recursive=True))), None),
                  10, "cat's countdown to start")
    worker.kill()
    poll(lambda: cat.task(lost["task_id"])["status"] == "failed", 30, "cat's task to fail")
    assert cat.task(lost["task_id"])["error"]["code"] == "worker_lost"

    # kill -9 serve with a running task and a pending one; restart; nothing lost or stuck.
    _, doomed = cat.submit_countdown(60)
    _, after = cat.submit_countdown(1)
    poll(lambda: cat.task(doomed["task_id"])["status"] == "running", 30, "cat's next task to run")
    server.descendants()
    server.proc.kill()
    server.proc.wait(timeout=5)
    try:
        poll(lambda: not [p for p in server.seen.values() if alive(p)], 20, "everything to die with serve")
    except AssertionError:
        raise AssertionError([cmdline(p) for p in server.seen.values() if alive(p)]) from None
    server.start()
    server.wait_healthy(workers=2)
    poll(lambda: cat.task(doomed["task_id"])["status"] == "failed", 30, "the interrupted task to settle")
    assert cat.task(doomed["task_id"])["error"]["code"] == "worker_lost"
    poll(lambda: cat.task(after["task_id"])["status"] == "completed", 30, "the waiting task to run after restart")
    for visitor in (ann, ben, cat):
        status, listing = visitor.call("GET", "/api/tasks/")
        assert status == 200
        assert all(t["status"] in ("completed", "failed", "cancelled") for t in listing["items"]), listing
    assert [len(v.call("GET", "/api/tasks/")[1]["items"]) for v in (ann, ben, cat)] == [1, 2, 3]


def aria2_children(server):
    return [proc for proc in server.children_named("aria2c")]


def test_it_supervises_aria2c_on_loopback_and_restarts_it_when_dead_or_hung(server):
    from downloads import daemon

    (aria2,) = poll(lambda: aria2_children(server), 10, "aria2c")
    conf_path = server.var_dir / "aria2" / "aria2.conf"
    assert stat.S_IMODE(conf_path.stat().st_mode) == 0o600
    options = dict(line.split("=", 1) for line in conf_path.read_text().splitlines())
    url, secret = daemon.rpc_url(options["rpc-listen-port"]), options["rpc-secret"]
    assert options["rpc-listen-all"] == "false" and len(secret) >= 32
    assert secret not in cmdline(aria2)  # the secret is in the 0600 file, not in `ps`
    assert options["save-session"] == options["input-file"] == str(server.var_dir / "aria2" / "session")
    assert daemon.answers(url, secret) and not daemon.answers(url, "not-the-secret")
    listening = [c.laddr for c in aria2.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip in ("127.0.0.1", "::1") for addr in listening)
    # The other children get the daemon's address and secret.
    for child in server.children_named("manage.py worker") + server.children_named("taskscheduler"):
        assert child.environ()["MEDIACRAFT_ARIA2_URL"] == url
        assert child.environ()["MEDIACRAFT_ARIA2_SECRET"] == secret

    # An unfinished download is in the session file, so it survives a restart.
    gid = daemon.rpc_call(url, secret, "aria2.addUri", [["http://127.0.0.1:9/later.bin"],
                                                        {"dir": str(server.var_dir / "later"), "pause": "true"}])
    session = server.var_dir / "aria2" / "session"
    poll(lambda: gid in session.read_text(), 10, "the session to be saved")
    aria2.kill()
    (second,) = poll(lambda: [p for p in aria2_children(server) if p.pid != aria2.pid], 15, "a new aria2c")
    assert f"aria2 (pid {aria2.pid}) exited with signal SIGKILL; restarting in 1 s" in server.log()
    poll(lambda: daemon.answers(url, secret), 10, "the new aria2c to answer on the same address")
    assert daemon.rpc_call(url, secret, "aria2.tellStatus", [gid, ["status"]]) == {"status": "paused"}

    # Hung: alive but not answering RPC. The health check kills it and it is started again.
    second.suspend()
    (third,) = poll(lambda: [p for p in aria2_children(server) if p.pid not in (aria2.pid, second.pid)], 30,
                    "aria2c to be replaced after failing its health check")
    assert f"aria2 (pid {second.pid}) failed its health check" in server.log()
    poll(lambda: daemon.answers(url, secret), 10, "the third aria2c to answer")
    assert server.proc.poll() is None


def test_it_uses_the_operators_aria2_daemon_when_named(make_server):
    from tests.download_support import Aria2Daemon

    daemon = Aria2Daemon()
    try:
        server = make_server(workers=1, **daemon.env)
        server.migrate()
        server.start()
        server.wait_healthy()
        assert aria2_children(server) == []
        assert "started aria2" not in server.log()
        (worker,) = server.children_named("manage.py worker")
        assert worker.environ()["MEDIACRAFT_ARIA2_URL"] == daemon.url
        assert worker.environ()["MEDIACRAFT_ARIA2_SECRET"] == daemon.secret
        assert not (server.var_dir / "aria2").exists()
    finally:
        daemon.stop()


def test_it_writes_only_json_lines_in_json_mode(make_server):
    """MEDIACRAFT_LOG_FORMAT=json: serve's own lines, the children's logging and what else they
    print (Redis, aria2c, daphne's access log) come out one JSON object a line."""
    server = make_server(workers=1, MEDIACRAFT_LOG_FORMAT="json")
    server.migrate()
    server.start()
    server.wait_healthy()
    visitor = Visitor(server)
    status, task = visitor.submit_countdown(1)
    assert status == 201, task
    poll(lambda: visitor.task(task["task_id"])["status"] == "completed", 30, "the task to complete")
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 0

    entries = [json.loads(line) for line in server.log().splitlines()]
    assert all(isinstance(entry, dict) and {"logger", "message", "task_id"} <= set(entry) for entry in entries)
    loggers = {entry["logger"] for entry in entries}
    assert {"mediacraft.serve", "web", "rq.worker", "tasks.services"} <= loggers, loggers
    assert any(e["logger"] == "mediacraft.serve" and e["message"].startswith("MediaCraft is running at")
               for e in entries)
    assert any(e["logger"] == "web" and f'"GET /api/tasks/{task["task_id"]}/' in e["message"] for e in entries)
    # The worker's lines that name the task are tagged with it (the access log's are requests).
    about = [e for e in entries if task["task_id"] in e["message"] and e["logger"] != "web"]
    assert about and all(e["task_id"] == task["task_id"] for e in about), about


@pytest.mark.parametrize("env, says", [
    ({"MEDIACRAFT_HEARTBEAT_SECONDS": 20, "MEDIACRAFT_LOST_AFTER_SECONDS": 5},
     "MEDIACRAFT_LOST_AFTER_SECONDS (5) must be at least 3 times MEDIACRAFT_HEARTBEAT_SECONDS (20)"),
    ({"MEDIACRAFT_LOST_AFTER_SECONDS": 2}, "MEDIACRAFT_LOST_AFTER_SECONDS (2) must be at least 3 times "
                                           "MEDIACRAFT_HEARTBEAT_SECONDS (3)"),
    ({"MEDIACRAFT_REDIS_URL": "garbage"}, "MEDIACRAFT_REDIS_URL must look like redis://host:6379/0"),
    ({"MEDIACRAFT_REDIS_URL": "redis://:pw@host:port/0"}, "got 'redis://:***@host:port/0'"),
    ({"MEDIACRAFT_TIME_ZONE": "Mars/Olympus"}, "MEDIACRAFT_TIME_ZONE must be a time zone name"),
    ({"MEDIACRAFT_LOG_LEVEL": "LOUD"}, "MEDIACRAFT_LOG_LEVEL must be DEBUG, INFO"),
    ({"DATABASE_URL": "garbage"}, "DATABASE_URL must look like postgres://"),
    ({"MEDIACRAFT_WORKERS": "-1"}, "MEDIACRAFT_WORKERS must be at least 0"),
    ({"MEDIACRAFT_VAR_DIR": "/dev/null/var"}, "MEDIACRAFT_VAR_DIR: cannot create /dev/null/var: Not a directory"),
    ({"MEDIACRAFT_SQLITE_PATH": "/dev/null/db.sqlite3"}, "Cannot use the database (/dev/null/db.sqlite3"),
    ({"DATABASE_URL": f"postgres://nobody@127.0.0.1:{free_port()}/nodb"}, "Cannot use the database (DATABASE_URL)"),
    ({}, "The database lacks"),  # not migrated
])
def test_it_refuses_a_bad_setting_in_one_line_naming_it(make_server, env, says):
    server = make_server(workers=0, **env)
    done = subprocess.run([sys.executable, MANAGE, "serve"], cwd=ROOT, env=server.env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 1 and "running" not in done.stdout
    (line,) = done.stderr.splitlines()
    assert says in line


def test_it_names_the_var_dir_when_it_cannot_keep_the_secret_key(make_server):
    server = make_server(workers=0)
    (server.var_dir / "secret_key").mkdir()
    done = subprocess.run([sys.executable, MANAGE, "serve"], cwd=ROOT, env=server.env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"ImproperlyConfigured: MEDIACRAFT_VAR_DIR: cannot write "
                                        f"{server.var_dir}/secret_key (Is a directory); make the folder writable, "
                                        f"or set MEDIACRAFT_SECRET_KEY"]


def test_it_waits_for_an_external_redis_before_starting_anything(tmp_path, settings):
    import threading

    launcher = Launcher(base_dir=ROOT, var_dir=tmp_path, workers=1, bind=f"127.0.0.1:{free_port()}",
                        redis_url=settings.REDIS_URL, aria2_url="http://127.0.0.1:1/jsonrpc", stdout=io.StringIO())
    launcher.wait_for_redis()  # answers
    launcher.redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nobody there
    launcher.redis_timeout = 1
    give_up = threading.Timer(8, launcher.request_stop, (None, None))  # were it to start anyway
    give_up.start()
    try:
        with pytest.raises(LauncherError, match=r"^Redis \(MEDIACRAFT_REDIS_URL\) did not answer within 1 s: "):
            launcher.run()
    finally:
        give_up.cancel()
    assert launcher.children == []
