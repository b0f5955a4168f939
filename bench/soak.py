"""`make soak`: a real `manage.py serve` (embedded Redis, aria2c, 2 workers, the scheduler, daphne)
in a temp var dir, driven for SOAK_MINUTES (default 30) by 10 visitors submitting mixed tasks over
HTTP: `command` (the shipped countdown, some cancelled), `watermark` and `merge` on small generated
videos, `download` from a local HTTP server, and, for the 2 operators among them, `strm_sync` on a
small local library. Reports tasks by kind and status, refusals, errors and the memory (RSS) of
the web and worker processes at the start and the end, prints it as Markdown and appends it to
bench/SOAK.md. Not part of `make bench` nor of CI.

SOAK_TRACE_HEAP=1 also traces the web process's Python allocations (tracemalloc, a snapshot a
minute) and reports their total over time and what grew most: whether its RSS growth is objects
kept (a leak) or the C allocator's. Tracing slows the web and inflates its RSS."""

import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    ROOT, Stack, children, database_prefix, free_port, median, percentile, rss_mb, wait_port,
)

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
VISITORS, OPERATORS = 10, 2  # the last OPERATORS visitors use Bearer tokens and may run strm_sync
WORKERS = 2
TASK_TIMEOUT = 300  # seconds a visitor waits for one task before calling it stuck
KINDS = {"command": 4, "cancel": 1, "watermark": 2, "merge": 2, "download": 3, "strm_sync": 2}
TERMINAL = {"completed", "failed", "cancelled", "timeout"}
TRACE_HEAP = os.environ.get("SOAK_TRACE_HEAP") == "1"
# Loaded by every Python process serve starts (it is first on their PYTHONPATH); acts in the web's.
HEAP_SITE = """import os, threading, time, tracemalloc
if tracemalloc.is_tracing() and b"daphne" in open("/proc/self/cmdline", "rb").read():
    def dump():
        for n in range(1, 100000):
            time.sleep(60)
            tracemalloc.take_snapshot().dump(os.path.join(os.environ["SOAK_HEAP_DIR"], f"{n:05d}.snap"))
    threading.Thread(target=dump, daemon=True).start()
"""


class Visitor(threading.Thread):
    """Submits a task, follows it to its end (cancelling some countdowns on the way), deletes some
    finished ones, waits a little, again until the deadline. Records everything in `soak`."""

    def __init__(self, number, soak):
        super().__init__(name=f"visitor-{number}", daemon=True)
        import requests

        self.number, self.soak = number, soak
        self.rnd = random.Random(number)
        self.http = requests.Session()
        self.operator = number >= VISITORS - OPERATORS
        if self.operator:
            self.http.headers["Authorization"] = f"Bearer {soak.tokens[number]}"
        else:
            self.http.get(f"{soak.url}/api/account/", timeout=30)  # the CSRF cookie

    def request(self, method, path, **kwargs):
        headers = {}
        if not self.operator and method != "GET":
            headers = {"X-CSRFToken": self.http.cookies.get("csrftoken", ""), "Referer": f"{self.soak.url}/"}
        return self.http.request(method, f"{self.soak.url}{path}", headers=headers, timeout=60, **kwargs)

    def run(self):
        kinds = [k for k in KINDS if self.operator or k != "strm_sync"]
        while time.monotonic() < self.soak.deadline:
            kind = self.rnd.choices(kinds, [KINDS[k] for k in kinds])[0]
            try:
                self.one(kind)
            except Exception as exc:
                self.soak.error(f"{self.name} {kind}: {type(exc).__name__}: {exc}", traceback.format_exc())
            time.sleep(self.rnd.uniform(0.5, 2.0))

    def one(self, label):
        kind = "command" if label == "cancel" else label
        started = time.monotonic()
        response = self.submit(label)
        self.soak.submit_ms.append((time.monotonic() - started) * 1000)
        if response.status_code != 201:
            code = response.json().get("error", {}).get("code", "?") if response.content[:1] == b"{" else "?"
            self.soak.count(kind, f"refused {response.status_code} {code}")
            if response.status_code >= 500:
                self.soak.error(f"{self.name} {kind}: HTTP {response.status_code}", response.text[:2000])
            return
        task_id = response.json()["task_id"]
        if label == "cancel":
            time.sleep(self.rnd.uniform(0.5, 3))
            cancel = self.request("POST", f"/api/tasks/{task_id}/cancel/")
            if cancel.status_code not in (200, 409):
                self.soak.error(f"{self.name} cancel: HTTP {cancel.status_code}", cancel.text[:2000])
        task = self.follow(task_id)
        if task is None:
            self.soak.count(kind, "stuck")
            self.soak.error(f"{self.name} {kind}: task {task_id} not finished after {TASK_TIMEOUT} s", "")
            return
        self.soak.count(kind, task["status"])
        self.soak.turnaround[kind].append(time.monotonic() - started)
        if task["status"] == "failed":
            self.soak.error(f"{self.name} {kind}: task {task_id} failed: {task['error']['code']}",
                            json.dumps(task["error"])[:2000])
        if self.rnd.random() < 0.5:
            deleted = self.request("DELETE", f"/api/tasks/{task_id}/")
            if deleted.status_code != 204:
                self.soak.error(f"{self.name} delete: HTTP {deleted.status_code}", deleted.text[:2000])

    def submit(self, label):
        soak, rnd = self.soak, self.rnd
        if label in ("command", "cancel"):
            seconds = rnd.randint(5, 10) if label == "cancel" else rnd.randint(1, 4)
            body = {"kind": "command", "params": {"template": "countdown", "args": {"seconds": seconds}}}
        elif label == "download":
            urls = rnd.sample(soak.downloads, rnd.randint(1, 2))
            body = {"kind": "download", "params": {"urls": urls}}
        elif label == "strm_sync":
            body = {"kind": "strm_sync", "params": {"profile": f"soak-{self.number}",
                                                    "sync_type": rnd.choice(["full", "incremental"])}}
        else:
            videos = [soak.videos[0]] if label == "watermark" else soak.videos
            params = {"rects": [soak.logo]} if label == "watermark" else {}
            files = [("files", (p.name, p.read_bytes(), "video/mp4")) for p in videos]
            return self.request("POST", "/api/tasks/", data={"kind": label, "params": json.dumps(params)}, files=files)
        return self.request("POST", "/api/tasks/", json=body)

    def follow(self, task_id):
        deadline = time.monotonic() + TASK_TIMEOUT
        while time.monotonic() < deadline:
            response = self.request("GET", f"/api/tasks/{task_id}/")
            if response.status_code != 200:
                self.soak.error(f"{self.name}: GET task {task_id}: HTTP {response.status_code}", response.text[:2000])
                return None
            task = response.json()
            if task["status"] in TERMINAL:
                return task
            time.sleep(0.5)
        return None


class Soak:
    def __init__(self, url, tokens, videos, logo, downloads):
        self.url, self.tokens, self.videos, self.logo, self.downloads = url, tokens, videos, logo, downloads
        self.deadline = time.monotonic() + MINUTES * 60
        self.lock = threading.Lock()
        self.tasks = Counter()
        self.errors = []
        self.submit_ms = []
        self.turnaround = {kind: [] for kind in KINDS}

    def count(self, kind, status):
        with self.lock:
            self.tasks[kind, status] += 1

    def error(self, what, detail):
        with self.lock:
            self.errors.append((what, detail))


def serve_processes(serve):
    """{role: [psutil.Process]} of serve's children (and the workers' work horses)."""
    roles = {}
    for child in children(serve):
        try:
            line = " ".join(child.cmdline())
        except Exception:
            continue
        role = ("web" if "daphne" in line else "worker" if "manage.py worker" in line else "scheduler"
                if "taskscheduler" in line else "redis" if "redis-server" in line else "aria2c"
                if "aria2c" in line else "other")
        roles.setdefault(role, []).append(child)
        if role == "worker":
            roles.setdefault("work horse", []).extend(children(child))
    return roles


def memory(serve):
    """{role: largest RSS in MB among its processes now}."""
    return {role: max(rss_mb(p) for p in procs) for role, procs in serve_processes(serve).items() if procs}


def prepare(data, file_server):
    """Users (8 visitors come by cookie themselves; 2 operators with tokens), videos, downloads, STRM."""
    from django.contrib.auth.models import Permission, User

    from tests.download_support import generated
    from tests.media_helpers import LOGO, make_video
    from tests.strm_support import make_library, make_profile
    from users.services import token_create

    make_library(data / "strm" / "source", shows=4, seasons=2, episodes=6)
    tokens = {}
    for number in range(VISITORS - OPERATORS, VISITORS):
        user = User.objects.create(username=f"operator-{number}")
        user.user_permissions.add(Permission.objects.get(codename="run_operator_tasks"))
        tokens[number] = token_create(user=user)[1]
        make_profile(name=f"soak-{number}", source_type="local", source_path=str(data / "strm" / "source"),
                     target_path=str(data / "strm" / f"library-{number}"))
    videos = [make_video(data / "clip-a.mp4", seconds=2), make_video(data / "clip-b.mp4", seconds=2)]
    downloads = [file_server.add(f"/soak/{size}mb-{i}.bin", generated(size * 2**20, i))
                 for i, size in enumerate((1, 2, 4, 8))]
    return tokens, videos, LOGO, downloads


def main():
    from tests.download_support import FileServer

    data = Path(tempfile.mkdtemp(prefix="mcsoak-", dir="/tmp"))
    port = free_port()
    env = {"MEDIACRAFT_LOG_LEVEL": "WARNING", "MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE": "true",
           "MEDIACRAFT_STRM_ROOTS": str(data / "strm"), "MEDIACRAFT_WORKERS": WORKERS,
           "MEDIACRAFT_BIND": f"127.0.0.1:{port}"}
    file_server = FileServer()
    try:
        with Stack(workers=0, redis=False, **env) as stack:
            tokens, videos, logo, downloads = prepare(data, file_server)
            log = stack.var / "serve.log"
            trace = {}
            if TRACE_HEAP:
                heap = data / "heap"
                (heap / "site").mkdir(parents=True)
                (heap / "site" / "sitecustomize.py").write_text(HEAP_SITE)
                trace = {"PYTHONTRACEMALLOC": 8, "SOAK_HEAP_DIR": heap, "PYTHONPATH": f"{heap / 'site'}:{ROOT}"}
            serve = stack.start([sys.executable, str(ROOT / "manage.py"), "serve"], log=log, **trace)
            wait_port(port, serve, "manage.py serve", timeout=60)
            time.sleep(3)  # the workers register
            soak = Soak(f"http://127.0.0.1:{port}", tokens, videos, logo, downloads)
            started_at = datetime.datetime.now()
            at_start = memory(serve)
            peak = dict(at_start)
            visitors = [Visitor(number, soak) for number in range(VISITORS)]
            for visitor in visitors:
                visitor.start()
            while any(v.is_alive() for v in visitors):
                time.sleep(5)
                for role, mb in memory(serve).items():
                    peak[role] = max(peak.get(role, 0), mb)
            at_end = memory(serve)
            serve.send_signal(signal.SIGTERM)  # serve stops its children within 10 s
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                soak.error("manage.py serve did not stop within 30 s of SIGTERM", "")
            lines = log.read_text(errors="replace").splitlines()
            database = stack.database
            heap_report = traced_heap(data / "heap") if TRACE_HEAP else ""
    finally:
        file_server.close()
        shutil.rmtree(data, ignore_errors=True)
    logged = [line for line in lines if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]
    text = report(soak, started_at, at_start, peak, at_end, logged, database) + heap_report
    print(text)
    path = ROOT / "bench" / "SOAK.md"
    if not path.exists():
        path.write_text("# Soak runs\n\nAppended by `make soak` (bench/soak.py); newest last.\n")
    with path.open("a") as f:
        f.write("\n" + text)
    return 1 if soak.errors or logged else 0


def traced_heap(folder):
    """Markdown: the web's traced Python memory a minute apart, and the lines that grew most
    between the first snapshot and the last."""
    import tracemalloc

    paths = sorted(folder.glob("*.snap"))
    if len(paths) < 2:
        return "\nWeb heap: fewer than 2 snapshots (a run under 2 minutes?).\n"
    totals = []
    for path in paths:
        totals.append(sum(stat.size for stat in tracemalloc.Snapshot.load(str(path)).statistics("filename")) / 1e6)
    first, last = tracemalloc.Snapshot.load(str(paths[0])), tracemalloc.Snapshot.load(str(paths[-1]))
    out = [f"\nWeb heap (tracemalloc, Python objects only): {' → '.join(f'{mb:.1f}' for mb in totals)} MB, "
           "a minute apart. Grown most from the first snapshot to the last:\n",
           "| where | size (KB) | change (KB) | blocks |", "|---|---|---|---|"]
    grown = sorted((s for s in last.compare_to(first, "lineno") if s.size_diff > 0), key=lambda s: -s.size_diff)
    for stat in grown[:5]:
        frame = stat.traceback[0]
        where = f"{re.sub(r'.*/(site-packages|lib/python3[.][0-9]+)/', '', frame.filename)}:{frame.lineno}"
        out.append(f"| `{where}` | {stat.size / 1024:.0f} | {stat.size_diff / 1024:+.0f} | {stat.count} |")
    return "\n".join(out) + "\n"


def report(soak, started_at, at_start, peak, at_end, logged, database):
    trace = "SOAK_TRACE_HEAP=1 " if TRACE_HEAP else ""
    out = [f"## soak {started_at:%Y-%m-%d %H:%M}, {MINUTES:g} min\n",
           f"`{database_prefix(database)}{trace}SOAK_MINUTES={MINUTES:g} make soak` (bench/soak.py) on "
           f"{platform.machine()}, {os.cpu_count()} cores, "
           f"Python {platform.python_version()}: `manage.py serve` with `MEDIACRAFT_WORKERS={WORKERS}` and default "
           f"admission limits, {database}, in a temp var dir; {VISITORS} visitors ({VISITORS - OPERATORS} by session "
           f"cookie + CSRF, {OPERATORS} operators by Bearer token), each submitting one task, following it to its end "
           "(half of them then deleted), pausing 0.5–2 s, again. Countdowns of 1–4 s (and 5–10 s ones cancelled "
           "after 0.5–3 s), watermark/merge on 2 s 320x240 videos, downloads of 1–8 MB from a local HTTP server, "
           "STRM syncs (full or incremental) of a 48-episode local library.\n"]
    statuses = ["completed", "failed", "cancelled", "timeout", "stuck"]
    refusals = sorted({status for (_kind, status) in soak.tasks if status.startswith("refused")})
    out.append("| kind | " + " | ".join(statuses + refusals) + " | median turnaround (s) |")
    out.append("|---|" + "---|" * (len(statuses) + len(refusals) + 1))
    for kind in ("command", "watermark", "merge", "download", "strm_sync"):
        cells = [str(soak.tasks[kind, status]) for status in statuses + refusals]
        turnaround = soak.turnaround[kind] + (soak.turnaround["cancel"] if kind == "command" else [])
        out.append(f"| {kind} | " + " | ".join(cells) + f" | {median(turnaround):.1f} |" if turnaround else
                   f"| {kind} | " + " | ".join(cells) + " | — |")
    total = sum(soak.tasks.values())
    out.append(f"\n{total} tasks; submit latency p50 {percentile(soak.submit_ms, 0.5):.0f} ms, "
               f"p95 {percentile(soak.submit_ms, 0.95):.0f} ms (uploads included)." if soak.submit_ms else "")
    out.append(f"\nErrors seen by the visitors: {len(soak.errors)}; ERROR lines in serve's log: {len(logged)}.")
    for what, _detail in soak.errors[:10]:
        out.append(f"- {what}")
    for line in logged[:10]:
        out.append(f"- log: `{line[:200]}`")
    out.append("\n| process | RSS at start (MB) | peak (MB) | at end (MB) |")
    out.append("|---|---|---|---|")
    for role in ("web", "worker", "work horse", "scheduler", "redis", "aria2c"):
        if role in peak:
            out.append(f"| {role} | {at_start.get(role, 0):.0f} | {peak[role]:.0f} | {at_end.get(role, 0):.0f} |")
    out.append("\nPer role the largest process (2 workers); sampled every 5 s; a work horse lives as long as its task.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
