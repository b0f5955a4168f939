"""Helpers for the STRM tests: a real WebDAV server (wsgidav + cheroot on 127.0.0.1, basic auth,
mounted under /dav as Alist/OpenList do) that can be told to fail or slow down listings, a
generator of libraries with awkward names, and a way to run the processor in-process."""

import os
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest

DAV_USER, DAV_PASSWORD = "librarian", "pa ss:wörd#1"

# Names that break naive URL handling: spaces, '#', '%', '&', quotes, '+', ';', '?', Chinese, emoji.
AWKWARD = [
    "Plain", "with space", "hash#tag", "100% pure", "rock & roll", "中文 电影", "it's", 'say "hi"',
    "plus+semi;colon=eq", "what?", "emoji 🎬", "%41%2F not an escape", "[brackets] (parens) {braces}",
    "a,b@c!d$e~f", "trailing dot.", "  lead space",
]


@pytest.fixture
def roots(tmp_path, settings):
    """An allowed root (MEDIACRAFT_STRM_ROOTS) holding a source folder and a library folder."""
    root = tmp_path / "allowed"
    (root / "source").mkdir(parents=True)
    (root / "library").mkdir()
    settings.MEDIACRAFT_STRM_ROOTS = [str(root)]
    return root


class DavServer:
    """wsgidav serving `root` under /dav. `fail` holds path prefixes (decoded, below /dav/) whose
    PROPFIND answers `fail_status` (500, which clients retry, unless told otherwise); `delay`
    slows every PROPFIND; `propfinds` counts them."""

    def __init__(self, root, users=None, digest=False):
        from cheroot import wsgi
        from wsgidav.wsgidav_app import WsgiDAVApp

        users = users or {DAV_USER: DAV_PASSWORD}
        self.root = Path(root)
        self.fail = set()
        self.fail_status = "500 Internal Server Error"
        self.delay = 0.0
        self.propfinds = 0
        self.gets = 0
        self.lock = threading.Lock()
        app = WsgiDAVApp({
            "provider_mapping": {"/dav": str(root)},
            "http_authenticator": {"domain_controller": None, "accept_basic": not digest, "accept_digest": digest,
                                   "default_to_digest": digest},
            "simple_dc": {"user_mapping": {"*": {u: {"password": p} for u, p in users.items()}}},
            "verbose": 0, "logging": {"enable": False}, "dir_browser": {"enable": False},
            "lock_storage": False, "property_manager": None,
        })
        self.server = wsgi.Server(("127.0.0.1", 0), self._wrap(app), numthreads=16)
        self.server.prepare()
        self.port = self.server.bind_addr[1]
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/dav/"

    def _wrap(self, app):
        def middleware(environ, start_response):
            path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
            below = path.removeprefix("/dav").lstrip("/")
            if environ["REQUEST_METHOD"] == "PROPFIND":
                with self.lock:
                    self.propfinds += 1
                if self.delay:
                    time.sleep(self.delay)
                if any(below.startswith(prefix) for prefix in self.fail):
                    start_response(self.fail_status, [("Content-Type", "text/plain")])
                    return [b"injected failure"]
            elif environ["REQUEST_METHOD"] == "GET":
                with self.lock:
                    self.gets += 1
            return app(environ, start_response)

        return middleware

    def stop(self):
        self.server.stop()
        self.thread.join(timeout=5)


@pytest.fixture
def dav_factory():
    servers = []

    def start(root, users=None, digest=False):
        server = DavServer(root, users, digest)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def write(path, data=b"x", mtime=None):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def make_library(root, *, shows=8, seasons=3, episodes=10, extras=True):
    """A nested library: <show>/Season N/<show> SxxEyy.mkv with .srt/.ass/.nfo/.jpg sidecars
    and unrelated .txt files; every show and episode name is awkward. Returns the relative
    paths of the media files and of the sidecars."""
    root = Path(root)
    media, sidecars = [], []
    for s in range(shows):
        show = f"{AWKWARD[s % len(AWKWARD)]} {s}".strip()
        write(root / show / "tvshow.nfo", f"<tvshow>{show}</tvshow>")
        sidecars.append(f"{show}/tvshow.nfo")
        if extras:
            write(root / show / "poster.jpg", b"\xff\xd8" + show.encode() * 20)
            sidecars.append(f"{show}/poster.jpg")
        for n in range(1, seasons + 1):
            season = f"Season {n}"
            for e in range(1, episodes + 1):
                awkward = AWKWARD[(s + n + e) % len(AWKWARD)]
                base = f"{show}/{season}/{awkward} S{n:02d}E{e:02d}"
                write(root / f"{base}.mkv", b"\x1aE\xdf\xa3" + base.encode())
                media.append(f"{base}.mkv")
                if e % 2:
                    write(root / f"{base}.srt", f"1\n00:00:01,000 --> 00:00:02,000\n{base}\n")
                    sidecars.append(f"{base}.srt")
                if e % 5 == 0:
                    write(root / f"{base}.ass", "[Script Info]\n")
                    sidecars.append(f"{base}.ass")
            if extras:
                write(root / show / season / "notes.txt", "not media")
    return media, sidecars


def expected_url(base_url, rel):
    return base_url + "/".join(quote(part, safe="") for part in rel.split("/"))


def strm_name(rel):
    return rel[: rel.rfind(".")] + ".strm"


class FakeReporter:
    def __init__(self):
        self.updates = []

    def update(self, percent=None, *, stage=None, code=None, params=None, stats=None):
        self.updates.append({"percent": percent, "stage": stage, "code": code, "params": params, "stats": stats})


def run_processor(owner, profile, sync_type="full"):
    """Run the strm_sync processor in this process on a running task row, as a worker would.
    Returns (task, result, reporter); a TaskError propagates."""
    from tasks.models import Task, TaskKind
    from tasks.processors import get_processor
    from tasks.runtime import TaskContext

    task = Task.objects.create(
        owner=owner, kind=TaskKind.STRM_SYNC, status=Task.Status.RUNNING, timeout=600,
        params={"profile": profile.pk, "profile_name": profile.name, "sync_type": sync_type, "trigger": "api"},
    )
    reporter = FakeReporter()
    processor = get_processor(TaskKind.STRM_SYNC)
    try:
        result = processor.run(TaskContext(task, reporter))
    except BaseException:
        processor.cleanup(TaskContext(task, reporter))
        Task.objects.filter(pk=task.pk).update(status=Task.Status.FAILED)
        raise
    Task.objects.filter(pk=task.pk).update(status=Task.Status.COMPLETED, result=result)
    return task, result, reporter


def make_profile(name="library", **fields):
    from strm.models import StrmProfile

    password = fields.pop("source_password", "")
    profile = StrmProfile(name=name, **fields)
    profile.set_password(password)
    profile.full_clean()
    profile.save()
    return StrmProfile.objects.get(pk=profile.pk)


def files_under(root):
    """Relative paths of every file below root."""
    root = Path(root)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}
