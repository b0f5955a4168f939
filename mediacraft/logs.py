"""Log records carry the id of the task that caused them (set around a task's work), and can
be written as JSON lines (MEDIACRAFT_LOG_FORMAT=json) for log shippers."""

import contextlib
import contextvars
import json
import logging
from datetime import datetime, timezone

current_task = contextvars.ContextVar("mediacraft_task", default=None)


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
        record.task_id = current_task.get() or "-"
        return record

    factory.mediacraft = True
    logging.setLogRecordFactory(factory)


class TaskIdFilter(logging.Filter):
    def filter(self, record):
        if not getattr(record, "task_id", None):
            record.task_id = current_task.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "task_id": None if record.task_id == "-" else record.task_id,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
