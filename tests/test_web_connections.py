"""The web process under concurrent requests keeps no database connection once they are answered.

Under ASGI, Django runs each request in a thread of its own: a persistent connection would outlive
its thread unclosed, and 20 concurrent clients would exhaust PostgreSQL's max_connections (they
did, with 500s, before connections were made per request)."""

import http.client
import threading
from pathlib import Path

import psutil
from django.db import connection

from tests.browser import Server
from tests.conftest import wait_for

CLIENTS, REQUESTS = 20, 8


def database_handles(server):
    """Connections the server holds: PostgreSQL backends other than this test's own, or the
    daphne process's open files of the SQLite database (its -wal and -shm included)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()")
            return cursor.fetchone()[0]
    name = str(Path(connection.settings_dict["NAME"]).resolve())
    return sum(1 for f in psutil.Process(server.proc.pid).open_files() if f.path.startswith(name))


def test_the_web_process_keeps_no_connection_after_concurrent_requests(transactional_db, redis_conn, tmp_path):
    server = Server("mediacraft.asgi:application", tmp_path)
    statuses = []

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
        for thread in threads:
            thread.join()
        assert statuses == [200] * (CLIENTS * REQUESTS), server.output()[-3000:]
        wait_for(lambda: database_handles(server) == 0, 10, message="the web process's connections to close")
    finally:
        server.stop()
