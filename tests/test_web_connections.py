"""The web process under concurrent requests keeps no database connection once they are answered.

Under ASGI, Django runs each request in a thread of its own: a persistent connection would outlive
its thread unclosed, and 20 concurrent clients would exhaust PostgreSQL's max_connections (they
did, with 500s, before connections were made per request)."""

import http.client
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from django.db import connection

from tests.browser import Server
from tests.conftest import ROOT, wait_for

CLIENTS, REQUESTS = 20, 8


def pg_ports(server):
    """The local ports of the server's TCP connections to PostgreSQL (other processes of the suite,
    workers and servers, may be connected to the test database too)."""
    port = int(connection.settings_dict.get("PORT") or 5432)
    return {c.laddr.port for c in psutil.Process(server.proc.pid).net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED}


def skip_if_uncountable():
    if connection.vendor == "postgresql" and (connection.settings_dict.get("HOST") or "/").startswith("/"):
        pytest.skip("counts the server's TCP connections to PostgreSQL; DATABASE_URL names a Unix socket")


def database_handles(server):
    """Connections the server holds: its TCP connections to PostgreSQL, or the daphne process's
    open files of the SQLite database (its -wal and -shm included)."""
    if connection.vendor == "postgresql":
        return len(pg_ports(server))
    name = str(Path(connection.settings_dict["NAME"]).resolve())
    return sum(1 for f in psutil.Process(server.proc.pid).open_files() if f.path.startswith(name))


@pytest.mark.parametrize("pool", [0, 4])
def test_the_web_process_keeps_no_connection_after_concurrent_requests(transactional_db, redis_conn, tmp_path, pool):
    """pool: MEDIACRAFT_DB_POOL, which serve sets for its daphne (PostgreSQL only): then the pool's
    connections stay, never more than its size."""
    if pool and connection.vendor != "postgresql":
        pytest.skip("MEDIACRAFT_DB_POOL pools PostgreSQL connections only; this run is on SQLite")
    skip_if_uncountable()
    server = Server("mediacraft.asgi:application", tmp_path, env={"MEDIACRAFT_DB_POOL": str(pool)})
    statuses, peak = [], []

    def client():
        for _ in range(REQUESTS):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
            conn.close()

    try:
        assert database_handles(server) == 0
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            peak.append(database_handles(server))
            time.sleep(0.02)
        assert statuses == [200] * (CLIENTS * REQUESTS), server.output()[-3000:]
        if pool:
            assert max(peak) <= pool and 1 <= database_handles(server) <= pool
            # The server drops the pooled connections (a restart, an idle timeout): the pool's
            # check at checkout replaces them, and no request sees an error.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND client_port = ANY(%s)",
                               [sorted(pg_ports(server))])
            statuses.clear()
            client()
            assert statuses == [200] * REQUESTS, server.output()[-3000:]
        else:
            wait_for(lambda: database_handles(server) == 0, 10, message="the web process's connections to close")
    finally:
        server.stop()


def test_serve_pools_connections_in_the_web_process_only(tmp_path):
    from mediacraft.launcher import Launcher

    launcher = Launcher(base_dir=ROOT, var_dir=tmp_path, workers=2, bind="127.0.0.1:1", web_db_pool=7)
    pools = {child.name: child.env.get("MEDIACRAFT_DB_POOL") for child in launcher.app_children()}
    assert pools == {"scheduler": "0", "worker-1": "0", "worker-2": "0", "web": "7"}


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_a_worker_refuses_to_start_with_a_database_pool(settings, redis_conn):
    from django.core.exceptions import ImproperlyConfigured

    from tasks.worker import TaskWorker

    pooled = {**settings.DATABASES["default"], "OPTIONS": {"pool": {"max_size": 4}}}
    settings.DATABASES = {"default": pooled}
    with pytest.raises(ImproperlyConfigured, match="MEDIACRAFT_DB_POOL"):
        TaskWorker(["default"], connection=redis_conn)


@pytest.mark.parametrize("value, message", [("-1", "must be at least 0, got -1"), ("ten", "must be a whole number")])
def test_a_bad_pool_size_stops_start_up_naming_the_variable(value, message):
    run = subprocess.run([sys.executable, str(ROOT / "manage.py"), "check"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "MEDIACRAFT_DB_POOL": value}, timeout=60)
    assert run.returncode != 0
    assert f"MEDIACRAFT_DB_POOL {message}" in run.stderr


def test_a_visitors_not_found_pages_keep_no_connection(transactional_db, redis_conn, tmp_path, alice):
    """Django renders a 404 page (an exception's response) in a thread of a shared executor, not
    in the request's: what it opens there is not closed at the request's end unless the page does."""
    from django.test import Client

    skip_if_uncountable()
    browser = Client()
    browser.force_login(alice)
    cookie = {"Cookie": f"sessionid={browser.cookies['sessionid'].value}"}
    server = Server("mediacraft.asgi:application", tmp_path, env={"MEDIACRAFT_DB_POOL": "0"})
    try:
        for path in ("/nowhere/", "/tasks/00000000-0000-0000-0000-000000000000/") * 6:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.request("GET", path, headers=cookie)
            response = conn.getresponse()
            assert response.status == 404 and b"<html" in response.read()
            conn.close()
        wait_for(lambda: database_handles(server) == 0, 10, message="the web process's connections to close")
    finally:
        server.stop()


def test_two_checkouts_test_in_postgresql_databases_of_their_own(tmp_path):
    """A CI clone's test run beside a working copy's must not share (and drop) one test database."""
    import shutil

    other = tmp_path / "other-checkout"
    (other / "mediacraft").mkdir(parents=True)
    shutil.copy(ROOT / "mediacraft" / "settings.py", other / "mediacraft" / "settings.py")
    (other / "mediacraft" / "__init__.py").touch()
    show = ("import importlib, sys; sys.path.insert(0, sys.argv[1]); "
            "print(importlib.import_module('mediacraft.settings').DATABASES['default']['TEST']['NAME'])")
    env = {**os.environ, "DATABASE_URL": "postgres://mc@db.example/media", "MEDIACRAFT_VAR_DIR": str(tmp_path / "var"),
           "MEDIACRAFT_SECRET_KEY": "k" * 50, "MEDIACRAFT_DB_POOL": "0"}
    names = []
    for checkout in (ROOT, other):
        run = subprocess.run([sys.executable, "-c", show, str(checkout)], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 0, run.stderr[-2000:]
        names.append(run.stdout.strip())
    assert names[0].startswith("test_media_") and names[1].startswith("test_media_")
    assert names[0] != names[1]
