"""Browser fixtures: a real daphne (HTTP + WebSocket) on the test database and test Redis, and
Debian's Chromium driven by Playwright. Without /usr/bin/chromium or the playwright package the
tests that use them are skipped, loudly.

    from tests.browser import *  # noqa: F401,F403  (fixtures: server, server_with_uploads, browser, new_page)
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

__all__ = ["browser_logs", "server", "server_with_uploads", "browser", "new_page", "PHONE", "DESKTOP", "Server",
           "no_page_errors"]


def _skip_reason():
    if not Path(CHROMIUM).exists():
        return (f"BROWSER TESTS SKIPPED: no Chromium at {CHROMIUM}. Install Debian's package "
                "(apt-get install chromium; .ci/run does this) to run them.")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "BROWSER TESTS SKIPPED: the playwright package is missing (pip install -r requirements.txt)."
    return None


ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


def _subprocess_env():
    from tests.conftest import subprocess_env  # imported late: this module is also daphne's app module

    env = subprocess_env()
    env.pop(ASYNC_UNSAFE, None)
    return env


def _wait_for(*args, **kwargs):
    from tests.conftest import wait_for

    return wait_for(*args, **kwargs)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """daphne serving `app` on a free port, with the test database's environment."""

    def __init__(self, app, log_dir, env=None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(log_dir) / f"daphne-{self.port}.log", "w+b")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mediacraft.daphne_server", "-b", "127.0.0.1", "-p", str(self.port), app],
            env={**_subprocess_env(), **(env or {})}, cwd=ROOT, start_new_session=True, stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for(self._ready, 30, 0.1, message=f"daphne on port {self.port}")
        except AssertionError:
            self.stop()
            raise AssertionError(f"daphne did not start:\n{self.output()[-3000:]}") from None

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"daphne exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=5)
        self.log.close()


@pytest.fixture(scope="session")
def browser_logs():
    path = tempfile.mkdtemp(prefix="mc-browser-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _server(app, django_db_setup, logs):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason=reason)
    # Pooled as serve's daphne is (PostgreSQL only), with a small pool: a page that kept its
    # connection would take a slot for good, and three such pages would leave every later one waiting.
    server = Server(app, logs, env={"MEDIACRAFT_DB_POOL": "3"})
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server(django_db_setup, browser_logs):
    """The real application (mediacraft.asgi:application). Pair it with transactional_db (or the
    `workers` fixture) so the rows a test writes are visible to it."""
    yield from _server("mediacraft.asgi:application", django_db_setup, browser_logs)


@pytest.fixture(scope="session")
def server_with_uploads(django_db_setup, browser_logs):
    """The application plus `checksum`, a test-only kind that takes uploads (see upload_application)."""
    yield from _server("tests.browser:upload_application", django_db_setup, browser_logs)


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module. Playwright's sync API keeps an asyncio loop registered on this
    thread, which Django's ORM takes for an async context; while it runs (and the database
    flushes between its tests), DJANGO_ALLOW_ASYNC_UNSAFE is set in this process only (daphne
    gets an environment without it)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason=reason)
    from playwright.sync_api import sync_playwright

    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


class PageErrors(list):
    """Console errors, uncaught exceptions and CSP violations seen by a page."""

    def watch(self, page):
        page.on("console", lambda msg: msg.type == "error" and self.append(f"console: {msg.text}"))
        page.on("pageerror", lambda exc: self.append(f"pageerror: {exc}"))
        return self


def no_page_errors(errors, allow=()):
    unexpected = [e for e in errors if not any(a in e for a in allow)]
    assert unexpected == [], unexpected


@pytest.fixture
def new_page(browser):
    """Factory: a page in a fresh browser context (its own cookies: a new visitor).
    Keyword arguments go to browser.new_context (locale, viewport, ...). Every page's console
    errors are collected in page.errors and must be empty at the end unless page.allowed_errors
    lists substrings to ignore."""
    contexts, pages = [], []

    def make(context=None, **options):
        options.setdefault("viewport", DESKTOP)
        options.setdefault("locale", "en-US")
        if context is None:
            context = browser.new_context(**options)
            contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20000)
        page.errors = PageErrors().watch(page)
        page.allowed_errors = []
        pages.append(page)
        return page

    yield make
    try:
        for page in pages:
            no_page_errors(page.errors, page.allowed_errors)
    finally:
        for context in contexts:
            context.close()


# ---- a kind with uploads, for the upload tests (the video kinds come with their own issue) --------


def _checksum_processor():
    import hashlib

    from django import forms

    from tasks.errors import InvalidParams
    from tasks.forms import MultipleFileField, TaskForm
    from tasks.processors import Processor

    class ChecksumForm(TaskForm):
        kind = "checksum"
        note = forms.CharField(label="Note", required=False, max_length=40)
        files = MultipleFileField(label="Files", help_text="One or more files, any kind.")

    class ChecksumProcessor(Processor):
        """Takes uploads and keeps each file's name, size and SHA-256 in its params. Its uploads
        reach validate() as they arrived (accepts_files=False: the API stores files only for the
        kinds that keep them, and probes those as videos); the page's upload path is the same."""

        kind = "checksum"

        def form_class(self, user):
            return ChecksumForm

        def validate(self, *, params, files, user):
            if params.get("note") == "reject":
                raise InvalidParams("The note was refused.", "note")
            if not files:
                raise InvalidParams("Choose at least one file.", "files")
            seen = []
            for upload in files:
                digest = hashlib.sha256()
                for chunk in upload.chunks():
                    digest.update(chunk)
                seen.append({"name": upload.name, "size": upload.size, "sha256": digest.hexdigest()})
            return {"note": params.get("note", ""), "uploads": seen}  # "files" means stored file ids

        def run(self, ctx):
            return {"uploads": ctx.params["uploads"]}

    return ChecksumProcessor()


def __getattr__(name):
    """`tests.browser:upload_application` for daphne: the real application with the checksum kind."""
    if name != "upload_application":
        raise AttributeError(name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mediacraft.settings")
    from mediacraft.asgi import application
    from tasks.processors import registry

    processor = _checksum_processor()
    registry()[processor.kind] = processor
    return application
