"""Staged uploads, previews and downloads: owner only, Range, RFC 6266 names, cleanup."""

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from storage.models import StoredFile
from tasks import services
from tasks.models import Task
from tests.conftest import submit_command, wait_for
from tests.media_helpers import LOGO, make_video

VIDEOS = {}


@pytest.fixture(scope="session")
def file_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    return {"clip": make_video(root / "Ünïcode clip 片段.mp4", seconds=2)}


@pytest.fixture(autouse=True)
def _videos(file_videos):
    VIDEOS.update(file_videos)


def stage(client, path=None):
    with open(path or VIDEOS["clip"], "rb") as f:
        return client.post("/api/files/", {"files": f})


@pytest.fixture
def staged(transactional_db, client_for, alice):
    client = client_for(alice)
    response = stage(client)
    assert response.status_code == 201, response.content
    (body,) = response.json()
    return client, body


def test_it_stages_an_upload_with_its_media_info(staged):
    client, body = staged
    assert body["name"] == "Ünïcode clip 片段.mp4" and body["role"] == "input" and body["task_id"] is None
    assert body["media"]["width"] == 320 and body["media"]["duration"] == 2.0
    stored = StoredFile.objects.get(pk=body["id"])
    assert stored.stored_name == "Ünïcode clip 片段.mp4" and stored.abs_path.exists()
    assert stored.size == stored.abs_path.stat().st_size and len(stored.sha256) == 64
    assert stored.expires_at > timezone.now()


def test_a_staged_upload_goes_to_its_task_and_a_later_task_gets_a_copy(staged):
    client, body = staged
    params = {"files": [body["id"]], "rects": [LOGO]}
    response = client.post("/api/tasks/", {"kind": "watermark", "params": params}, content_type="application/json")
    assert response.status_code == 201, response.content
    stored = StoredFile.objects.get(pk=body["id"])
    assert str(stored.task_id) == response.json()["task_id"] and stored.expires_at is None
    again = client.post("/api/tasks/", {"kind": "watermark", "params": params}, content_type="application/json")
    assert again.status_code == 201, again.content
    (copy_id,) = again.json()["params"]["files"]
    copy = StoredFile.objects.get(pk=copy_id)
    assert copy_id != body["id"] and str(copy.task_id) == again.json()["task_id"] and copy.sha256 == stored.sha256
    assert StoredFile.objects.get(pk=body["id"]).task_id == stored.task_id


def test_a_copy_of_a_task_is_a_hard_link_counted_once_against_the_quota(staged, settings, alice):
    from storage.selectors import used_bytes

    client, body = staged
    size = body["size"]
    settings.MEDIACRAFT_USER_QUOTA_MB = size * 1.5 / (1024 * 1024)  # room for one copy of the clip, not two
    params = {"files": [body["id"]], "rects": [LOGO]}
    first = client.post("/api/tasks/", {"kind": "watermark", "params": params}, content_type="application/json")
    again = client.post("/api/tasks/", {"kind": "watermark", "params": params}, content_type="application/json")
    assert first.status_code == again.status_code == 201, again.content
    original = StoredFile.objects.get(pk=body["id"])
    copy = StoredFile.objects.get(pk=again.json()["params"]["files"][0])
    assert copy.abs_path.stat().st_ino == original.abs_path.stat().st_ino and copy.blob == original.pk
    assert used_bytes(alice) == size
    assert client.get("/api/account/").json()["storage"]["used_bytes"] == size
    # The original's task deleted, the copy holds the data alone: still counted once.
    Task.objects.get(pk=first.json()["task_id"]).delete()
    assert not original.abs_path.exists() and copy.abs_path.stat().st_size == size
    assert used_bytes(alice) == size


def test_a_migrated_database_counts_the_copies_made_before_once(staged, alice):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from storage.selectors import used_bytes

    client, body = staged
    params = {"files": [body["id"]], "rects": [LOGO]}
    for _ in range(3):  # the upload itself, then two copies
        assert client.post("/api/tasks/", {"kind": "watermark", "params": params},
                           content_type="application/json").status_code == 201
    (other,) = stage(client).json()
    executor = MigrationExecutor(connection)
    executor.migrate([("storage", "0001_initial")])  # as it was: no blob, each row counted
    executor.loader.build_graph()
    executor.migrate([("storage", "0002_storedfile_blob")])
    blobs = {str(f.pk): f.blob and str(f.blob) for f in StoredFile.objects.all()}
    assert len(blobs) == 4 and blobs[body["id"]] is None and blobs[other["id"]] is None
    assert sorted(b for b in blobs.values() if b) == [body["id"], body["id"]]  # the copies: the first upload's data
    assert used_bytes(alice) == body["size"] + other["size"]


def test_uploads_racing_each_other_cannot_overshoot_the_quota(transactional_db, client_for, alice, settings,
                                                              monkeypatch):
    """Each upload passes the early quota check before its decode check; here all of them finish
    that together (a barrier after it), as concurrent uploads on a busy server do."""
    from django.db import connections

    from storage import services as storage
    from storage.selectors import used_bytes

    size = VIDEOS["clip"].stat().st_size
    settings.MEDIACRAFT_USER_QUOTA_MB = size * 2.5 / (1024 * 1024)
    racers = 5
    barrier = threading.Barrier(racers, timeout=60)
    decode_check = storage.probe

    def probe_then_wait(*args, **kwargs):
        media = decode_check(*args, **kwargs)
        barrier.wait()
        return media

    monkeypatch.setattr(storage, "probe", probe_then_wait)
    clients = [client_for(alice) for _ in range(racers)]
    answers = []

    def upload(client):
        try:
            answers.append(stage(client).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=upload, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201, 201, 413, 413, 413]
    assert StoredFile.objects.count() == 2 and used_bytes(alice) == 2 * size
    kept = {f.abs_path.parent for f in StoredFile.objects.all()}
    assert set(kept.pop().parent.iterdir()) == {f.abs_path.parent for f in StoredFile.objects.all()}  # none left over


def test_two_tasks_submitted_at_once_with_one_staged_upload_each_get_it(staged, client_for, alice, monkeypatch):
    """A double click: both submits find the upload staged, one task takes it, the other gets a copy."""
    from django.db import connections

    from storage import services as storage

    client, body = staged
    barrier = threading.Barrier(2, timeout=60)
    reuse, calls = storage.files_reuse, []

    def reuse_then_wait(**kwargs):
        found = reuse(**kwargs)
        calls.append(found)
        if len(calls) <= 2:  # both have read the upload as staged before either stores its task
            barrier.wait()
        return found

    monkeypatch.setattr(storage, "files_reuse", reuse_then_wait)
    params = {"files": [body["id"]], "rects": [LOGO]}
    answers = []

    def submit(browser):
        try:
            answers.append(browser.post("/api/tasks/", {"kind": "watermark", "params": params},
                                        content_type="application/json"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=(browser,)) for browser in (client, client_for(alice))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201, 201], [a.content for a in answers]
    assert len(calls) == 3  # the loser read its inputs again, and got a copy
    inputs = [StoredFile.objects.get(task_id=a.json()["task_id"]) for a in answers]
    assert len({f.pk for f in inputs}) == 2 and body["id"] in {str(f.pk) for f in inputs}
    assert all(f.abs_path.is_file() and f.sha256 == inputs[0].sha256 for f in inputs)
    assert StoredFile.objects.count() == 2


def test_where_no_hard_link_can_be_made_a_copy_counts_and_must_fit(staged, settings, alice, request):
    from storage.selectors import used_bytes

    client, body = staged
    size = body["size"]
    settings.MEDIACRAFT_USER_QUOTA_MB = size * 1.5 / (1024 * 1024)
    params = {"files": [body["id"]], "rects": [LOGO]}
    assert client.post("/api/tasks/", {"kind": "watermark", "params": params},
                       content_type="application/json").status_code == 201

    request.getfixturevalue("no_hard_links")  # from here on
    refused = client.post("/api/tasks/", {"kind": "watermark", "params": params}, content_type="application/json")
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "quota_exceeded"
    assert Task.objects.count() == 1 and StoredFile.objects.count() == 1 and used_bytes(alice) == size
    assert len(list(StoredFile.objects.get().abs_path.parent.parent.iterdir())) == 1  # no copy left on disk
    settings.MEDIACRAFT_USER_QUOTA_MB = size * 2.5 / (1024 * 1024)
    copied = client.post("/api/tasks/", {"kind": "watermark", "params": params}, content_type="application/json")
    assert copied.status_code == 201, copied.content
    copy = StoredFile.objects.get(pk=copied.json()["params"]["files"][0])
    assert copy.abs_path.stat().st_nlink == 1 and copy.blob is None and used_bytes(alice) == 2 * size


def test_it_keeps_files_to_their_owner(staged, client_for, bob):
    _client, body = staged
    other = client_for(bob)
    for url in (f"/api/files/{body['id']}/", f"/api/files/{body['id']}/download/", f"/api/files/{body['id']}/preview/"):
        response = other.get(url)
        assert response.status_code == 404 and "Ünïcode" not in response.content.decode()
    assert other.delete(f"/api/files/{body['id']}/").status_code == 404
    response = other.post("/api/tasks/", {"kind": "watermark", "params": {"files": [body["id"]], "rects": [LOGO]}},
                          content_type="application/json")
    assert response.status_code == 400 and "Unknown file" in response.json()["error"]["message"]
    assert StoredFile.objects.get(pk=body["id"]).task_id is None
    assert other.get("/api/files/not-a-uuid/").status_code == 404


def test_it_renders_a_preview_frame(staged):
    client, body = staged
    response = client.get(f"/api/files/{body['id']}/preview/", {"t": 1.5, "width": 160})
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response.content[:2] == b"\xff\xd8" and len(response.content) > 500
    assert client.get(f"/api/files/{body['id']}/preview/", {"t": 99}).status_code == 400
    assert client.get(f"/api/files/{body['id']}/preview/", {"width": 5}).status_code == 400


def test_a_preview_of_a_file_gone_from_disk_says_so_without_the_path(staged):
    client, body = staged
    stored = StoredFile.objects.get(pk=body["id"])
    stored.abs_path.unlink()
    response = client.get(f"/api/files/{body['id']}/preview/", {"t": 1})
    assert response.status_code == 410
    assert response.json()["error"] == {"code": "file_missing", "message": "The file is no longer on the server."}
    assert str(stored.abs_path.parent) not in response.content.decode()


def test_previews_wait_for_a_free_slot_then_say_the_server_is_busy(staged, settings):
    import threading

    from storage.media import preview_slots

    client, body = staged
    url = f"/api/files/{body['id']}/preview/"
    settings.MEDIACRAFT_PREVIEW_CONCURRENCY, settings.MEDIACRAFT_PREVIEW_WAIT_SECONDS = 1, 0.2
    slot = preview_slots(1)
    assert slot.acquire(timeout=5)  # the one slot is making another preview
    try:
        busy = client.get(url, {"t": 1})
    finally:
        slot.release()
    assert busy.status_code == 503 and busy["Retry-After"] == "2"
    assert busy.json()["error"] == {"code": "preview_busy",
                                    "message": "The server is busy making other previews; try again in a moment."}
    # A preview waiting for the slot gets it once the other is done.
    settings.MEDIACRAFT_PREVIEW_WAIT_SECONDS = 10
    assert slot.acquire(timeout=5)
    threading.Timer(0.3, slot.release).start()
    assert client.get(url, {"t": 1}).status_code == 200
    assert client.get(url, {"t": 1}).status_code == 200  # and gave it back


def test_it_serves_ranges_with_the_original_name(staged):
    client, body = staged
    url = f"/api/files/{body['id']}/download/"
    size = body["size"]
    full = client.get(url)
    content = b"".join(full.streaming_content)
    assert full.status_code == 200 and len(content) == size and full["Accept-Ranges"] == "bytes"
    disposition = full["Content-Disposition"]
    assert disposition.startswith("attachment;") and "filename*=utf-8''%C3%9Cn%C3%AFcode%20clip%20" in disposition
    part = client.get(url, HTTP_RANGE="bytes=10-19")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 10-19/{size}"
    assert b"".join(part.streaming_content) == content[10:20]
    tail = client.get(url, HTTP_RANGE="bytes=-5")
    assert b"".join(tail.streaming_content) == content[-5:]
    rest = client.get(url, HTTP_RANGE=f"bytes={size - 3}-")
    assert b"".join(rest.streaming_content) == content[-3:]
    assert client.get(url, HTTP_RANGE=f"bytes={size}-").status_code == 416
    assert client.get(url, {"inline": 1})["Content-Disposition"].startswith("inline;")


def test_only_media_is_served_inline(transactional_db, client_for, alice, tmp_path):
    """A video named report.html (a name is the uploader's, or a remote server's, to choose) opened
    inline would be a page of this site running whatever it holds: it downloads instead."""
    import shutil

    client = client_for(alice)
    for name, shown in (("report.html", False), ("drawing.svg", False), ("notes.txt", False), ("clip.mp4", True),
                        ("clip.webm", True)):
        named = tmp_path / name
        shutil.copyfile(VIDEOS["clip"], named)
        response = stage(client, named)
        assert response.status_code == 201, response.content
        served = client.get(f"/api/files/{response.json()[0]['id']}/download/", {"inline": 1})
        assert served["Content-Disposition"].startswith("inline;" if shown else "attachment;"), name
        assert served["X-Content-Type-Options"] == "nosniff"


def test_it_deletes_staged_uploads_but_not_files_in_use(staged):
    client, body = staged
    path = StoredFile.objects.get(pk=body["id"]).abs_path
    assert client.delete(f"/api/files/{body['id']}/").status_code == 204
    assert not path.exists() and not path.parent.exists()
    (second,) = stage(client).json()
    client.post("/api/tasks/", {"kind": "watermark", "params": {"files": [second["id"]], "rects": [LOGO]}},
                content_type="application/json")
    response = client.delete(f"/api/files/{second['id']}/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "file_in_use"


def test_it_expires_unused_uploads_and_removes_task_files_with_the_task(staged, alice, redis_conn):
    client, body = staged
    stale = StoredFile.objects.get(pk=body["id"])
    StoredFile.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    services.cleanup_expired()
    assert not StoredFile.objects.filter(pk=stale.pk).exists() and not stale.abs_path.exists()

    (used,) = stage(client).json()
    task_id = client.post("/api/tasks/", {"kind": "watermark", "params": {"files": [used["id"]], "rects": [LOGO]}},
                          content_type="application/json").json()["task_id"]
    task = Task.objects.get(pk=task_id)
    services.task_cancel(task=task)
    path = StoredFile.objects.get(pk=used["id"]).abs_path
    assert path.exists()
    Task.objects.filter(pk=task_id).update(expires_at=timezone.now() - timedelta(days=1))
    services.cleanup_expired()
    assert not Task.objects.filter(pk=task_id).exists()
    assert not StoredFile.objects.filter(pk=used["id"]).exists() and not path.exists()


def test_it_refuses_an_upload_that_is_not_a_video(transactional_db, client, tmp_path):
    bogus = tmp_path / "résumé.pdf"
    bogus.write_bytes(b"%PDF-1.4 not a video")
    response = stage(client, bogus)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message == "résumé.pdf is not a video that can be decoded (not a media format ffmpeg reads)."
    assert StoredFile.objects.count() == 0
    chinese = client.post("/api/files/", {"files": open(bogus, "rb")}, headers={"Accept-Language": "zh-hans"})
    assert "ffmpeg" in chinese.json()["error"]["message"] and "Invalid" not in chinese.json()["error"]["message"]
    assert client.post("/api/files/", {}).status_code == 400


def test_it_refuses_an_upload_over_the_size_limit_naming_it(transactional_db, client, tmp_path, settings):
    settings.MEDIACRAFT_MAX_UPLOAD_MB = 1
    big = tmp_path / "big.mp4"
    big.write_bytes(bytes(1024 * 1024 + 1))
    response = stage(client, big)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert "big.mp4 is larger than the 1 MB upload limit" in response.json()["error"]["message"]
    assert StoredFile.objects.count() == 0 and not list((settings.MEDIA_ROOT / "tmp").iterdir())


# --- all of a task's results as one ZIP ------------------------------------------------------------


def outputs(task, files):
    """Result files of the task: {name: bytes} in order, registered as its run would."""
    from storage import services as storage
    from tasks.runtime import task_work_dir

    out = task_work_dir(task.pk) / "output"
    stored = []
    for i, (name, data) in enumerate(files):
        path = out / str(i) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        stored.append(storage.file_register_output(task=task, path=path, name=name))
    return stored


def test_it_streams_all_of_a_tasks_results_as_one_zip(alice, tool, client_for):
    import io
    import zipfile

    task = submit_command(alice, title="Nightly: export")
    big = bytes(range(256)) * 4096  # 1 MiB: several chunks
    outputs(task, [("a.txt", b"first"), ("video.bin", big), ("a.txt", b"second"), ("empty.txt", b"")])
    response = client_for(alice).get(f"/api/tasks/{task.pk}/outputs.zip")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="Nightly_ export.zip"'
    chunks = list(response.streaming_content)
    assert len(chunks) > 4 and max(len(c) for c in chunks) <= 256 * 1024 + 1024  # never the whole file at once
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert archive.testzip() is None  # every CRC checks
    assert archive.namelist() == ["a.txt", "video.bin", "a (2).txt", "empty.txt"]
    assert [archive.read(n) for n in archive.namelist()] == [b"first", big, b"second", b""]
    assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}


def test_it_answers_a_zip_of_nothing_or_of_someone_elses_task_with_a_clear_4xx(alice, bob, tool, client_for):
    from django.test import Client

    mine, empty = submit_command(alice), submit_command(alice)
    (gone,) = outputs(mine, [("a.txt", b"x")])
    for client in (client_for(bob), Client()):
        response = client.get(f"/api/tasks/{mine.pk}/outputs.zip")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = client_for(alice).get(f"/api/tasks/{empty.pk}/outputs.zip")
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "no_outputs", "message": "This task has no result files."}
    gone.abs_path.unlink()
    response = client_for(alice).get(f"/api/tasks/{mine.pk}/outputs.zip")
    assert response.status_code == 410 and response.json()["error"]["code"] == "file_missing"


def test_the_task_page_offers_the_zip_only_for_two_results_or_more(alice, tool, client_for):
    one, two = submit_command(alice), submit_command(alice)
    outputs(one, [("a.txt", b"x")])
    outputs(two, [("a.txt", b"x"), ("b.txt", b"y")])
    client = client_for(alice)
    link = f'href="/api/tasks/{two.pk}/outputs.zip"'
    assert link in client.get(f"/tasks/{two.pk}/").content.decode()
    page = client.get(f"/tasks/{one.pk}/").content.decode()
    assert 'data-f="outputs_zip" hidden' in page


# --- through the real web server: streamed, and no faster than the client reads ---------------------

BIG = 256 * 1024 * 1024


class MemoryWatch:
    """A process's RSS, sampled every 20 ms while in the `with` block; `grew`: its peak over the start."""

    def __init__(self, pid):
        import psutil

        self.process, self.done = psutil.Process(pid), threading.Event()

    def __enter__(self):
        self.before = self.peak = self.process.memory_info().rss
        self.sampler = threading.Thread(target=self._sample)
        self.sampler.start()
        return self

    def _sample(self):
        while not self.done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.done.set()
        self.sampler.join()

    @property
    def grew(self):
        return self.peak - self.before


@pytest.mark.parametrize("what", ["download", "zip"])
def test_the_web_server_streams_a_big_result_no_faster_than_the_client_reads(what, transactional_db, redis_conn,
                                                                               alice, tool, tmp_path):
    """Django would read a synchronous stream whole into memory before sending a byte under ASGI,
    and daphne would buffer all a slow client has not read: either puts a 4 GB video in the web
    process. Here a client reads 1 MB, stops for a while, then reads the rest: the server's
    memory stays flat meanwhile."""
    import http.client

    from storage import services as storage
    from tasks.runtime import task_work_dir
    from tests.browser import Server
    from users.services import token_create

    task = submit_command(alice)
    paths = []
    for name in ("big.bin", "second.bin"):
        path = task_work_dir(task.pk) / "output" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(BIG)  # sparse: no disk taken, read as zeros
        paths.append(storage.file_register_output(task=task, path=path, name=name))
    url = (f"/api/files/{paths[0].pk}/download/" if what == "download" else f"/api/tasks/{task.pk}/outputs.zip")
    server = Server("mediacraft.asgi:application", tmp_path)
    token = token_create(user=alice)[1]
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("GET", "/api/account/")  # the server warmed up: its first request's imports are not counted
        conn.getresponse().read()
        with MemoryWatch(server.proc.pid) as memory:
            conn.request("GET", url, headers={"Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            assert response.status == 200, response.read()[:500]
            received = len(response.read(1024 * 1024))
            time.sleep(1.5)  # the client reads nothing for a while
            while chunk := response.read(4 * 1024 * 1024):
                received += len(chunk)
        assert received == BIG if what == "download" else received > 2 * BIG
        grew = memory.grew
        assert grew < 48 * 1024 * 1024, f"the server grew by {grew >> 20} MB while it served {received >> 20} MB"
        # A client that goes away in the middle, while its response waits: the server carries on.
        quitter = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        quitter.request("GET", url, headers={"Authorization": f"Bearer {token}"})
        quitter.getresponse().read(1024 * 1024)
        quitter.close()
        time.sleep(0.5)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("GET", url, headers={"Authorization": f"Bearer {token}", "Range": "bytes=0-9"})
        assert conn.getresponse().status in (200, 206)
        assert "Traceback" not in server.output() and "ERROR" not in server.output(), server.output()[-3000:]
    finally:
        server.stop()


def test_a_download_cut_off_during_a_read_is_closed_once_that_read_is_done():
    """The client goes away while a chunk is being read in the reading thread: the stream (a file,
    the ZIP writer) is closed after that read, in the same thread, not beside it."""
    import asyncio

    from storage.responses import _pulled

    reading, release, closed = threading.Event(), threading.Event(), []

    def chunks():
        try:
            yield b"first"
            reading.set()
            release.wait(10)  # a slow disk
            yield b"second"
        finally:
            closed.append(threading.current_thread().name)

    async def client_goes_away():
        stream = _pulled(chunks())
        assert await anext(stream) == b"first"
        pending = asyncio.ensure_future(anext(stream))
        await asyncio.to_thread(reading.wait, 10)
        pending.cancel()  # what Django does when the client disconnects
        with pytest.raises(asyncio.CancelledError):
            await pending
        await stream.aclose()
        release.set()

    asyncio.run(client_goes_away())
    wait_for(lambda: closed, 10, message="the stream closed")
    assert closed == [closed[0]] and closed[0].startswith("mediacraft-download")


# --- request bodies through the real web server: parsed by Django, never whole in memory -------------

BOUNDARY = "mediacraft-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(name, pieces):
    """A multipart body of one file (field `files`) made of `pieces`, yielded as they come."""
    yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
           "Content-Type: video/mp4\r\n\r\n").encode()
    yield from pieces
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def zeros(size):
    piece = bytes(1024 * 1024)  # one piece, sent again and again: the test process stays small
    for start in range(0, size, len(piece)):
        yield piece[:size - start]


def post(server, path, chunks, headers):
    """(status, body) of a POST whose body is sent chunk by chunk; headers give its Content-Length."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        conn.putrequest("POST", path)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        for chunk in chunks:
            conn.send(chunk)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_web_server_takes_a_big_upload_in_little_memory(transactional_db, redis_conn, alice, tmp_path):
    """Twisted parsed a multipart POST whole in memory before daphne ran (200 MB took 2.4 GB, on any
    URL, before any check), and daphne put all of a body on the application's queue at once (200 MB
    more). Here a 200 MB upload leaves the server's memory flat, and a real upload is still stored."""
    import json

    from tests.browser import Server
    from users.services import token_create

    big = 200 * 1024 * 1024
    server = Server("mediacraft.asgi:application", tmp_path, env={"MEDIACRAFT_MAX_UPLOAD_MB": "16"})
    auth = {"Authorization": f"Bearer {token_create(user=alice)[1]}", "Content-Type": MULTIPART}
    try:
        clip = list(multipart("clip.mp4", [VIDEOS["clip"].read_bytes()]))
        status, body = post(server, "/api/files/", clip, {**auth, "Content-Length": sum(map(len, clip))})
        assert status == 201 and json.loads(body)[0]["name"] == "clip.mp4", body[:500]
        length = sum(map(len, multipart("big.mp4", zeros(big))))
        with MemoryWatch(server.proc.pid) as memory:
            status, body = post(server, "/api/files/", multipart("big.mp4", zeros(big)),
                                {**auth, "Content-Length": length})
        # Parsed by Django through the upload handler, which stopped storing it past the limit.
        assert status == 413 and "big.mp4 is larger than the 16 MB" in json.loads(body)["error"]["message"]
        grew = memory.grew
        assert grew < 64 * 1024 * 1024, f"the server grew by {grew >> 20} MB while it took a {big >> 20} MB upload"
        assert "Traceback" not in server.output(), server.output()[-3000:]
    finally:
        server.stop()


def test_the_web_server_answers_a_malformed_multipart_body_in_the_apis_words(transactional_db, redis_conn, tmp_path):
    """Twisted answered it a bare, empty 400 on every URL, and logged nothing."""
    import json

    from tests.browser import Server

    server = Server("mediacraft.asgi:application", tmp_path)
    try:
        status, body = post(server, "/api/tasks/", [b"xx"], {"Content-Type": "multipart/form-data", "Content-Length": 2})
        assert status == 400 and json.loads(body)["error"] == {
            "code": "bad_multipart",
            "message": "The request body is not valid multipart/form-data: check its Content-Type and boundary."}
        # A boundary that the body never uses: Django finds no field, and the view says which it needs.
        status, body = post(server, "/api/tasks/", [b"xx"], {"Content-Type": "multipart/form-data; boundary=zzz",
                                                             "Content-Length": 2})
        assert status == 400 and json.loads(body)["error"]["code"] == "invalid_params", body[:500]
        assert "Traceback" not in server.output(), server.output()[-3000:]
    finally:
        server.stop()
