"""Every log line a task causes carries its id; JSON lines on request."""

import json
import logging

from mediacraft.logs import JsonFormatter, task_context
from tasks import services
from tests.conftest import submit_command


def test_it_tags_the_lines_a_task_causes(transactional_db, redis_conn, alice, tool, caplog):
    caplog.set_level(logging.INFO)
    task = submit_command(alice, steps=1)
    services.task_cancel(task=task)
    moves = [r for r in caplog.records if r.name == "tasks.services" and "->" in r.getMessage()]
    assert [r.getMessage() for r in moves] == ["pending -> queued", "queued -> cancelled"]
    assert {r.task_id for r in moves} == {str(task.pk)}
    logging.getLogger("elsewhere").info("not a task's")
    assert caplog.records[-1].task_id == "-"


def test_it_writes_json_lines():
    logger = logging.getLogger("tests.json")
    with task_context("abc"):
        record = logger.makeRecord("tests.json", logging.WARNING, __file__, 1, "disk %s", ("full",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["task_id"] == "abc" and entry["message"] == "disk full" and entry["level"] == "WARNING"
