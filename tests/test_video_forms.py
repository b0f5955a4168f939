"""The video kinds on the New task page (no JavaScript path: a plain multipart POST)."""

import pytest

from storage.models import StoredFile
from tasks.models import Task
from tests.media_helpers import make_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("forms") / "form clip.mp4", seconds=2)


def test_it_offers_the_video_forms(db, client):
    for kind, words in (("watermark", "Logo boxes"), ("merge", "Videos")):
        response = client.get(f"/new/{kind}/")
        assert response.status_code == 200 and words in response.content.decode()


def test_it_starts_a_watermark_task_from_the_form(transactional_db, redis_conn, client, clip):
    with open(clip, "rb") as video:
        response = client.post("/new/watermark/", {
            "watermark-video": video, "watermark-rects": "20, 20, 60, 30\n100 100 10 10",
            "watermark-method": "removelogo", "watermark-edge": "clamp", "watermark-start": "0.5",
            "watermark-priority": "5",
        })
    assert response.status_code == 302, response.content.decode()[:3000]
    task = Task.objects.get()
    assert task.kind == "watermark" and task.params["method"] == "removelogo" and task.params["start"] == 0.5
    assert task.params["rects"] == [{"x": 20, "y": 20, "w": 60, "h": 30}, {"x": 100, "y": 100, "w": 10, "h": 10}]
    assert StoredFile.objects.get().task_id == task.pk


def test_it_puts_errors_on_the_right_field(transactional_db, redis_conn, client, clip):
    with open(clip, "rb") as video:
        response = client.post("/new/watermark/", {"watermark-video": video, "watermark-rects": "20, 20, sixty",
                                                   "watermark-method": "delogo", "watermark-edge": "clamp",
                                                   "watermark-priority": "5"})
    assert response.status_code == 400 and "Line 1 is not four whole numbers" in response.content.decode()
    with open(clip, "rb") as video:
        response = client.post("/new/watermark/", {"watermark-video": video, "watermark-rects": "500, 20, 60, 30",
                                                   "watermark-method": "delogo", "watermark-edge": "clamp",
                                                   "watermark-priority": "5"})
    assert response.status_code == 400 and "outside the 320×240 frame" in response.content.decode()
    assert Task.objects.count() == 0 and StoredFile.objects.count() == 0


def test_it_starts_a_merge_from_the_form(transactional_db, redis_conn, client, clip):
    with open(clip, "rb") as a, open(clip, "rb") as b:
        response = client.post("/new/merge/", {"merge-videos": [a, b], "merge-mode": "auto", "merge-size": "640x360",
                                               "merge-priority": "5"})
    assert response.status_code == 302, response.content.decode()[:3000]
    task = Task.objects.get()
    assert task.kind == "merge" and task.params["size"] == "640x360" and len(task.params["files"]) == 2


def staged_upload(client, clip):
    with open(clip, "rb") as video:
        response = client.post("/api/files/", {"files": video}, HTTP_X_CSRFTOKEN="unused")
    assert response.status_code == 201, response.content
    return response.json()[0]["id"]


def test_it_starts_a_watermark_task_from_a_staged_upload(transactional_db, redis_conn, client, clip):
    file_id = staged_upload(client, clip)
    response = client.post("/new/watermark/", {
        "watermark-video_file": file_id, "watermark-rects": "20, 20, 60, 30", "watermark-method": "delogo",
        "watermark-edge": "clamp", "watermark-priority": "5",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    task = Task.objects.get()
    assert task.params["files"] == [file_id]
    assert StoredFile.objects.get().task_id == task.pk  # the staged file itself, not a copy


def test_it_refuses_someone_elses_staged_upload_on_the_video_field(transactional_db, redis_conn, client_for, alice,
                                                                   bob, clip):
    file_id = staged_upload(client_for(alice), clip)
    response = client_for(bob).post("/new/watermark/", {
        "watermark-video_file": file_id, "watermark-rects": "20, 20, 60, 30", "watermark-method": "delogo",
        "watermark-edge": "clamp", "watermark-priority": "5",
    })
    assert response.status_code == 400
    assert f"Unknown file: {file_id}" in response.content.decode()
    assert Task.objects.count() == 0 and StoredFile.objects.get().owner == alice


def test_it_still_requires_a_video_without_a_staged_one(transactional_db, redis_conn, client):
    response = client.post("/new/watermark/", {"watermark-rects": "20, 20, 60, 30", "watermark-method": "delogo",
                                               "watermark-edge": "clamp", "watermark-priority": "5"})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    assert Task.objects.count() == 0
