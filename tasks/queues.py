"""Redis and RQ access, created lazily per process (redis-py resets its pool after a fork)."""

import functools

from django.conf import settings

QUEUE_NAMES = ("high", "default", "low")
RUN_TASK = "tasks.jobs.run_task"  # every task's job; TaskWorker prepares these runs


@functools.cache
def _connection(url):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30)


def redis_connection():
    return _connection(settings.REDIS_URL)


def queue_name_for(priority):
    if priority >= 7:
        return "high"
    if priority <= 3:
        return "low"
    return "default"


def get_queue(name):
    from rq import Queue

    return Queue(name, connection=redis_connection())
