"""The suite's private redis-server (tests/redis_plugin.py) never outlives the pytest that
started it: not after a bad option (pytest stops before it configures), nor after a kill -9."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil

from tests.conftest import ROOT, wait_for


def redis_servers():
    found = set()
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "redis-server":
            found.add(proc.pid)
    return found


def var_dirs():
    return set(Path("/tmp").glob("mct-*"))


def child_env():
    """A pytest of its own: without this run's redis (the plugin would reuse it) and its var/."""
    env = dict(os.environ)
    for name in ("MEDIACRAFT_TEST_REDIS_PID", "MEDIACRAFT_REDIS_URL", "MEDIACRAFT_VAR_DIR"):
        env.pop(name, None)
    return env


def test_a_pytest_stopped_by_a_bad_option_leaves_no_redis_server_nor_var_dir():
    before, dirs = redis_servers(), var_dirs()
    result = subprocess.run([sys.executable, "-m", "pytest", "--no-such-option"], cwd=ROOT, env=child_env(),
                            capture_output=True, timeout=60)
    assert result.returncode == 4 and b"--no-such-option" in result.stderr  # a usage error
    wait_for(lambda: not redis_servers() - before, 10, message="the child's redis-server to stop")
    assert not var_dirs() - dirs


def test_a_killed_pytest_leaves_no_redis_server():
    before, dirs = redis_servers(), var_dirs()
    # Collecting only: a child that ran tests would set up the very test database this run uses.
    child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "--collect-only", "tests/test_dispatch.py"],
                             cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = wait_for(lambda: redis_servers() - before, 30, message="the child's redis-server")
    finally:
        child.kill()
        child.wait()
    wait_for(lambda: not redis_servers() & started, 10, message="the child's redis-server to stop")
    for leftover in var_dirs() - dirs:  # a kill -9 leaves its var/ (a temp dir): not this test's point
        shutil.rmtree(leftover, ignore_errors=True)
