"""Log records carry the id of the task that caused them (set around a task's work), and can
be written as JSON lines (MEDIACRAFT_LOG_FORMAT=json) for log shippers."""

import contextlib
import contextvars
import json
import logging
import os
import time
from datetime import datetime, timezone

current_task = contextvars.ContextVar("mediacraft_task", default=None)
# The task a worker process runs (one at a time, from its dequeue to its end) and a work horse
# runs (its whole life): lines of any of their threads (RQ's own, a watchdog's) are that task's.
# current_task, where set, wins (the worker settling another task).
process_task = None


def set_process_task(task_id):
    global process_task
    process_task = None if task_id is None else str(task_id)


def task_id_now():
    return current_task.get() or process_task or "-"


@contextlib.contextmanager
def task_context(task_id):
    token = current_task.set(str(task_id))
    try:
        yield
    finally:
        current_task.reset(token)


def install_record_factory():
    """Every record, whoever handles it (ours, RQ's, a test's), knows its task."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "mediacraft", False):
        return

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        record.task_id = task_id_now()
        return record

    factory.mediacraft = True
    logging.setLogRecordFactory(factory)


class TaskIdFilter(logging.Filter):
    def filter(self, record):
        if not getattr(record, "task_id", None):
            record.task_id = task_id_now()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record):
        exception = self.formatException(record.exc_info) if record.exc_info else None
        return json_line(record.name, record.getMessage(), level=record.levelname, created=record.created,
                         task_id=record.task_id, process=record.process, exception=exception)


def json_line(logger, message, *, level="INFO", created=None, task_id="-", process=None, exception=None):
    """One log line as JSON, for records and for what serve writes itself or passes on."""
    entry = {
        "time": datetime.fromtimestamp(time.time() if created is None else created, timezone.utc)
        .isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "task_id": None if task_id == "-" else task_id,
        "message": message,
        "process": os.getpid() if process is None else process,
    }
    if exception:
        entry["exception"] = exception
    return json.dumps(entry, ensure_ascii=False)
