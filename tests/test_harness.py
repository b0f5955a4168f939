"""The suite's private redis-server (tests/redis_plugin.py) never outlives the pytest that
started it: not after a bad option (pytest stops before it configures), nor after a kill -9."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil

from tests.conftest import ROOT, wait_for



def redis_servers(pid):
    """The redis-servers a pytest with this pid started: each runs in the var dir that pytest
    made, /tmp/mct-<pid>-* (tests/redis_plugin.py). The suite may run next to another (CI runs
    SQLite and PostgreSQL side by side), whose redis-servers come and go meanwhile."""
    found = set()
    for proc in psutil.process_iter(["name"]):
        try:
            if proc.info["name"] == "redis-server" and proc.cwd().startswith(f"/tmp/mct-{pid}-"):
                found.add(proc.pid)
        except psutil.Error:
            continue
    return found


def var_dirs(pid):
    """The var dirs a pytest with this pid made."""
    return set(Path("/tmp").glob(f"mct-{pid}-*"))


def child_env():
    """A pytest of its own: without this run's redis (the plugin would reuse it) and its var/."""
    env = dict(os.environ)
    for name in ("MEDIACRAFT_TEST_REDIS_PID", "MEDIACRAFT_REDIS_URL", "MEDIACRAFT_VAR_DIR"):
        env.pop(name, None)
    return env


def test_a_pytest_stopped_by_a_bad_option_leaves_no_redis_server_nor_var_dir():
    child = subprocess.Popen([sys.executable, "-m", "pytest", "--no-such-option"], cwd=ROOT, env=child_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _out, err = child.communicate(timeout=60)
    assert child.returncode == 4 and b"--no-such-option" in err  # a usage error
    wait_for(lambda: not redis_servers(child.pid), 10, message="the child's redis-server to stop")
    assert not var_dirs(child.pid)


def test_a_killed_pytest_leaves_no_redis_server():
    # Collecting only: a child that ran tests would set up the very test database this run uses.
    child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "--collect-only", "tests/test_dispatch.py"],
                             cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: redis_servers(child.pid), 30, message="the child's redis-server")
    finally:
        child.kill()
        child.wait()
    wait_for(lambda: not redis_servers(child.pid), 10, message="the child's redis-server to stop")
    for leftover in var_dirs(child.pid):  # a kill -9 leaves its var/ (a temp dir): not this test's point
        shutil.rmtree(leftover, ignore_errors=True)
