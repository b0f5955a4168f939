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


def test_it_tags_every_line_of_a_workers_run_in_json(workers, alice, tool, tmp_path):
    from tasks.models import Task
    from tests.conftest import submit_command, wait_for

    log_file = tmp_path / "worker.log"
    with log_file.open("w") as out:
        [proc] = workers(1, output=out, verbosity=1, MEDIACRAFT_LOG_FORMAT="json", MEDIACRAFT_HEARTBEAT_SECONDS=1)

    def settled(task, status):
        wait_for(lambda: Task.objects.get(pk=task.pk).status == status, 30, message=f"{task.pk} {status}")

    done = submit_command(alice, steps=1)
    settled(done, Task.Status.COMPLETED)
    failed = submit_command(alice, steps=1, exit=3)
    settled(failed, Task.Status.FAILED)
    # Settled behind its horse's back: the horse's watchdog kills it, then its worker says so.
    gone = submit_command(alice, steps=1, sleep=30)  # no progress meanwhile: only the watchdog looks
    wait_for(lambda: Task.objects.get(pk=gone.pk).stage == "running", 30, message="its first progress")
    Task.objects.filter(pk=gone.pk).update(status=Task.Status.FAILED)
    wait_for(lambda: "Work-horse terminated" in log_file.read_text(), 30, message="the worker to see its horse die")

    entries = [json.loads(line) for line in log_file.read_text().splitlines()]  # all of them JSON
    ids = {str(task.pk) for task in (done, failed, gone)}
    for entry in entries:
        named = [task_id for task_id in ids if task_id in entry["message"]]
        if named:
            assert entry["task_id"] == named[0], entry
        if entry["process"] != proc.pid:  # a work horse's
            assert entry["task_id"] in ids, entry

    def tagged(task, logger, text):
        return any(e["task_id"] == str(task.pk) and e["logger"] == logger and text in e["message"] for e in entries)

    assert tagged(done, "rq.worker", "Job OK")
    assert tagged(done, "rq.worker", f"default: {done.pk}") or tagged(done, "rq.worker", "default: command")
    assert tagged(failed, "tasks.services", "running -> failed")
    assert tagged(gone, "tasks.runtime", "killing the work horse")
    assert tagged(gone, "rq.worker", "Work-horse terminated")
