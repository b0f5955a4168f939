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


# --- a copy of a video task: its inputs used again, never uploaded twice -----------------------

def uploads_on_disk(owner):
    from pathlib import Path

    from django.conf import settings

    folder = Path(settings.MEDIA_ROOT) / "uploads" / str(owner.pk)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def copy_page(client, task):
    from tests.test_pages_forms import copy_link, page_form

    link = copy_link(client, task)
    assert link == f"/new/{task.kind}/?from={task.pk}"
    html = client.get(link).content.decode()
    return html, page_form(html)


def test_a_copy_of_a_watermark_task_uses_its_video_again(transactional_db, redis_conn, client_for, alice, clip):
    import os

    from tasks import services

    client = client_for(alice)
    with open(clip, "rb") as video:
        response = client.post("/new/watermark/", {
            "watermark-video": video, "watermark-rects": "20, 20, 60, 30\n100, 100, 10, 10",
            "watermark-method": "removelogo", "watermark-edge": "clamp", "watermark-start": "0.5",
            "watermark-end": "1.5", "watermark-priority": "7", "watermark-title": "first try",
        })
    assert response.status_code == 302
    original = Task.objects.get()
    source = StoredFile.objects.get(task=original)
    html, values = copy_page(client, original)
    assert 'data-reuse="' in html and "form clip.mp4" in html and "Leave it empty to use the copied task" in html
    assert values["watermark-video_file"] == str(source.pk)
    assert values["watermark-rects"] == "20, 20, 60, 30\n100, 100, 10, 10"
    response = client.post("/new/watermark/", values)  # no file chosen: the same video
    assert response.status_code == 302, response.content.decode()[:3000]
    copy = Task.objects.exclude(pk=original.pk).get()
    assert {k: v for k, v in copy.params.items() if k != "files"} == \
        {k: v for k, v in original.params.items() if k != "files"}
    assert (copy.title, copy.priority) == ("first try", 7)
    reused = StoredFile.objects.get(task=copy)
    assert copy.params["files"] == [str(reused.pk)] and reused.pk != source.pk
    assert (reused.sha256, reused.size, reused.media, reused.original_name) == \
        (source.sha256, source.size, source.media, source.original_name)
    assert reused.expires_at is None and reused.role == StoredFile.Role.INPUT
    assert os.stat(reused.abs_path).st_ino == os.stat(source.abs_path).st_ino  # a hard link: no room taken
    Task.objects.filter(pk=original.pk).update(status=Task.Status.COMPLETED)
    services.task_delete(task=Task.objects.get(pk=original.pk))
    assert not source.abs_path.exists() and reused.abs_path.read_bytes() == clip.read_bytes()
    assert uploads_on_disk(alice) == [str(reused.pk)]


def test_a_copy_of_a_merge_keeps_its_videos_in_order(transactional_db, redis_conn, client_for, alice, clip, tmp_path):
    import shutil

    client = client_for(alice)
    second = tmp_path / "second.mp4"
    shutil.copy(clip, second)
    with open(second, "rb") as b, open(clip, "rb") as a:
        response = client.post("/new/merge/", {"merge-videos": [b, a], "merge-mode": "reencode", "merge-fps": "12",
                                               "merge-priority": "5"})
    assert response.status_code == 302
    original = Task.objects.get()
    html, values = copy_page(client, original)
    assert "second.mp4, form clip.mp4" in html
    response = client.post("/new/merge/", values)
    assert response.status_code == 302, response.content.decode()[:3000]
    copy = Task.objects.exclude(pk=original.pk).get()
    names = [StoredFile.objects.get(pk=i).original_name for i in copy.params["files"]]
    assert names == ["second.mp4", "form clip.mp4"]
    assert set(copy.params["files"]).isdisjoint(original.params["files"])
    assert (copy.params["mode"], copy.params["fps"]) == ("reencode", 12.0)
    # Videos chosen in the copy's form replace the copied ones.
    with open(clip, "rb") as a, open(clip, "rb") as b:
        response = client.post("/new/merge/", {**values, "merge-videos": [a, b]})
    assert response.status_code == 302
    third = Task.objects.exclude(pk__in=[original.pk, copy.pk]).get()
    assert [f.original_name for f in StoredFile.objects.filter(task=third)] == ["form clip.mp4"] * 2


def submit_reusing(client, file_ids, **extra):
    import json

    return client.post("/api/tasks/", json.dumps({"kind": "merge", "params": {"files": file_ids, **extra}}),
                       content_type="application/json")


@pytest.fixture
def merged(transactional_db, redis_conn, client_for, alice, clip):
    """Alice's merge task of two uploads, and her client."""
    client = client_for(alice)
    with open(clip, "rb") as a, open(clip, "rb") as b:
        response = client.post("/new/merge/", {"merge-videos": [a, b], "merge-mode": "auto", "merge-priority": "5"})
    assert response.status_code == 302
    return Task.objects.get(), client


def test_the_api_reuses_only_the_callers_own_inputs(merged, client_for, bob, alice):
    task, client = merged
    ids = task.params["files"]
    response = submit_reusing(client_for(bob), ids)
    assert response.status_code == 400 and response.json()["error"]["message"] == f"Unknown file: {ids[0]}."
    assert StoredFile.objects.count() == 2 and uploads_on_disk(bob) == []
    response = submit_reusing(client, ids)
    assert response.status_code == 201, response.content
    copy = Task.objects.get(pk=response.json()["task_id"])
    assert len(copy.params["files"]) == 2 and StoredFile.objects.filter(task=copy).count() == 2
    assert len(uploads_on_disk(alice)) == 4


@pytest.mark.parametrize("refusal", ["missing on disk", "over quota", "too many waiting", "bad params"])
def test_a_refused_copy_leaves_no_file_behind(refusal, merged, alice, settings, request):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from storage.services import file_store_upload

    task, client = merged
    extra = {}
    if refusal == "missing on disk":
        StoredFile.objects.filter(task=task).order_by("position").last().abs_path.unlink()
        expected = (400, "form clip.mp4 is no longer on the server; upload it again.")
    elif refusal == "over quota":  # hard links take no quota: here none can be made, so real copies must fit
        request.getfixturevalue("no_hard_links")
        settings.MEDIACRAFT_USER_QUOTA_MB = 1
        room = 1024 * 1024 - sum(f.size for f in StoredFile.objects.all())
        copied = sum(f.size for f in StoredFile.objects.all())
        # Room for one of the two videos again, not for both.
        file_store_upload(owner=alice, upload=SimpleUploadedFile("filler.bin", b"x" * (room - copied + 100)), video=False)
        expected = (413, "does not fit in your storage quota of 1 MB")
    elif refusal == "too many waiting":
        Task.objects.filter(pk=task.pk).update(status=Task.Status.PENDING)
        settings.MEDIACRAFT_USER_MAX_PENDING = 1
        expected = (429, "You already have 1 task waiting")
    else:
        extra = {"mode": "fastest"}
        expected = (400, "mode")
    files, on_disk = set(StoredFile.objects.values_list("pk", flat=True)), uploads_on_disk(alice)
    response = submit_reusing(client, task.params["files"], **extra)
    assert response.status_code == expected[0], response.content
    assert expected[1] in response.json()["error"]["message"]
    assert set(StoredFile.objects.values_list("pk", flat=True)) == files and Task.objects.count() == 1
    assert uploads_on_disk(alice) == on_disk


def test_a_copy_is_a_real_copy_where_hard_links_fail(merged, alice, monkeypatch):
    import os

    task, client = merged

    def no_links(src, dst, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    response = submit_reusing(client, task.params["files"])
    assert response.status_code == 201, response.content
    for old_id, new_id in zip(task.params["files"], response.json()["params"]["files"]):
        old, new = StoredFile.objects.get(pk=old_id), StoredFile.objects.get(pk=new_id)
        assert os.stat(old.abs_path).st_ino != os.stat(new.abs_path).st_ino
        assert old.abs_path.read_bytes() == new.abs_path.read_bytes()
