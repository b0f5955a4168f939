"""The periodic side of the engine: reconcile and dispatch every few seconds, clean up expired
tasks every MEDIACRAFT_CLEANUP_SECONDS. Several may run (one per host); a Redis lock lets one act."""

import logging
import signal
import time
import uuid

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

log = logging.getLogger("tasks.scheduler")
LOCK_KEY = "mediacraft:scheduler:leader"


class Command(BaseCommand):
    help = "Run the task reconciler, dispatcher and cleanup loop."
    # As for `worker`: the checks would import the URLconf (django-ninja, pydantic) for good.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one round and exit.")

    def handle(self, *args, once=False, **options):
        from tasks import services
        from tasks.queues import redis_connection

        stop = {"now": False}

        def request_stop(signum, frame):
            stop["now"] = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        me = uuid.uuid4().hex
        interval = settings.MEDIACRAFT_RECONCILE_SECONDS
        next_cleanup = 0.0
        while not stop["now"]:
            started = time.monotonic()
            try:
                conn = redis_connection()
                ttl = max(10, interval * 5)
                leader = conn.set(LOCK_KEY, me, nx=True, ex=ttl) or (conn.get(LOCK_KEY) or b"").decode() == me
                if leader:
                    conn.expire(LOCK_KEY, ttl)
                    close_old_connections()
                    done = services.reconcile()
                    if done["lost"] or done["requeued"]:
                        log.warning("reconciler: %s", done)
                    try:
                        from strm.services import strm_start_due_syncs

                        strm_start_due_syncs()
                    except Exception:
                        log.exception("scheduled STRM syncs could not be started")
                    if started >= next_cleanup:
                        removed = services.cleanup_expired()
                        if removed:
                            log.info("cleanup: removed %s expired tasks", removed)
                        next_cleanup = started + settings.MEDIACRAFT_CLEANUP_SECONDS
            except Exception:
                log.exception("scheduler round failed; trying again")
            if once:
                break
            while not stop["now"] and time.monotonic() - started < interval:
                time.sleep(0.2)
        try:
            conn = redis_connection()
            if (conn.get(LOCK_KEY) or b"").decode() == me:
                conn.delete(LOCK_KEY)
        except Exception:
            pass
