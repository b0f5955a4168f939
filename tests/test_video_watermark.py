"""`watermark` with real ffmpeg: uploads, validation against the real frame, the result decoded."""

import json
import subprocess
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from storage.media import ffmpeg_exe
from storage.models import StoredFile
from tasks.models import Task
from tests.conftest import wait_for
from tests.media_helpers import LOGO, frame_rgb, info, make_video, redness, region_mean_diff

FAR = {"x": 220, "y": 150, "w": 60, "h": 50}


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return {
        "logo": make_video(root / "logo clip.mp4", seconds=4),
        "long": make_video(root / "long.mp4", size="640x360", seconds=120, rate=30),
        "phone": make_video(root / "手机 视频.mp4", size="240x426", rate=30, seconds=2, audio_rate=48000),
    }


def upload_task(client, path, **params):
    with open(path, "rb") as f:
        return client.post("/api/tasks/", {"kind": "watermark", "params": json.dumps(params), "files": f})


def wait_done(client, task_id, timeout=60):
    body = wait_for(lambda: (b := client.get(f"/api/tasks/{task_id}/").json())["status"] in Task.TERMINAL and b,
                    timeout, message="the task to finish")
    return body


def live_ffmpeg(word):
    """ffmpeg processes (not zombies) whose command line mentions word."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if "ffmpeg" in proc.info["name"] and proc.status() != psutil.STATUS_ZOMBIE \
                    and word in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def media_files():
    root = Path(settings.MEDIA_ROOT)
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_it_removes_the_logo_and_keeps_the_rest(workers, client):
    workers(1)
    response = upload_task(client, VIDEOS["logo"], rects=[LOGO])
    assert response.status_code == 201, response.content
    task = response.json()
    assert task["kind"] == "watermark" and task["title"] == "logo clip.mp4"
    assert [f["name"] for f in task["inputs"]] == ["logo clip.mp4"]
    done = wait_done(client, task["task_id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100 and done["result"]["audio"] == "copied"
    (output,) = done["outputs"]
    assert output["name"] == "logo clip-nologo.mp4"
    stored = StoredFile.objects.get(pk=output["id"])
    out_info, in_info = info(stored.abs_path), info(VIDEOS["logo"])
    assert (out_info["width"], out_info["height"], out_info["fps"]) == (320, 240, 25.0)
    assert abs(out_info["duration"] - in_info["duration"]) < 0.1
    assert out_info["vcodec"] == "h264" and out_info["acodec"] == "aac"
    before, after = frame_rgb(VIDEOS["logo"], 2, 320, 240), frame_rgb(stored.abs_path, 2, 320, 240)
    assert redness(before, 320, LOGO) > 150
    assert redness(after, 320, LOGO) < 60
    assert region_mean_diff(before, after, 320, FAR) < 6
    # The file downloads, with its name and a working Range.
    response = client.get(output["url"], HTTP_RANGE="bytes=0-99")
    assert response.status_code == 206 and len(b"".join(response.streaming_content)) == 100


def test_it_uses_removelogo_only_inside_the_time_range(workers, client):
    workers(1)
    task = upload_task(client, VIDEOS["logo"], rects=[LOGO], method="removelogo", start=2, end=4).json()
    done = wait_done(client, task["task_id"])
    assert done["status"] == "completed", done
    path = StoredFile.objects.get(pk=done["outputs"][0]["id"]).abs_path
    assert redness(frame_rgb(path, 1, 320, 240), 320, LOGO) > 150  # before start: untouched
    assert redness(frame_rgb(path, 3, 320, 240), 320, LOGO) < 60


def test_it_handles_a_vertical_video_with_a_chinese_name(workers, client):
    workers(1)
    task = upload_task(client, VIDEOS["phone"], rects=[{"x": 20, "y": 20, "w": 60, "h": 30}]).json()
    done = wait_done(client, task["task_id"])
    assert done["status"] == "completed", done
    output = done["outputs"][0]
    assert output["name"] == "手机 视频-nologo.mp4"
    assert (output["media"]["width"], output["media"]["height"]) == (240, 426)
    response = client.get(output["url"])
    assert "filename*=utf-8''%E6%89%8B%E6%9C%BA%20%E8%A7%86%E9%A2%91-nologo.mp4" in response["Content-Disposition"]


@pytest.mark.parametrize(
    "rects, edge, message",
    [
        ([{"x": 400, "y": 10, "w": 20, "h": 20}], "clamp", "outside the 320×240 frame"),
        ([{"x": 10, "y": 10, "w": 0, "h": 20}], "clamp", "zero or negative size"),
        ([{"x": 10, "y": 10, "w": 20, "h": -5}], "clamp", "zero or negative size"),
        ([{"x": 0, "y": 10, "w": 20, "h": 20}], "refuse", "touches or crosses the edge of the 320×240 frame"),
        ([{"x": 10, "y": 10, "w": 20}], "clamp", "needs exactly x, y, w and h"),
        ([], "clamp", "at least one rectangle"),
        ("box", "clamp", "at least one rectangle"),
    ],
)
def test_it_refuses_bad_rectangles_before_anything_runs(transactional_db, client, rects, edge, message):
    before = media_files()
    response = upload_task(client, VIDEOS["logo"], rects=rects, edge=edge)
    assert response.status_code == 400, response.content
    assert message in response.json()["error"]["message"]
    assert Task.objects.count() == 0 and StoredFile.objects.count() == 0
    assert media_files() == before  # the upload left nothing behind


def test_it_clamps_a_box_crossing_the_edge_and_says_so(db, client):
    response = upload_task(client, VIDEOS["logo"], rects=[{"x": -10, "y": 200, "w": 50, "h": 100}])
    assert response.status_code == 201, response.content
    params = response.json()["params"]
    assert params["rects"] == [{"x": 1, "y": 200, "w": 39, "h": 39}]
    assert params["notes"][0]["code"] == "rect_clamped"


def test_it_refuses_files_that_are_not_decodable_videos(transactional_db, client, tmp_path):
    before = media_files()
    truncated = tmp_path / "cut.mp4"
    data = Path(VIDEOS["logo"]).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path, words in ((truncated, "cut.mp4 is not a video"), (text, "notes.mp4 is not a video"),
                        (empty, "empty.mp4 is empty")):
        response = upload_task(client, path, rects=[LOGO])
        assert response.status_code == 400, response.content
        assert words in response.json()["error"]["message"]
    assert StoredFile.objects.count() == 0 and Task.objects.count() == 0
    assert media_files() == before


def test_it_enforces_the_upload_limit_and_the_quota(transactional_db, client, settings):
    before = media_files()
    settings.MEDIACRAFT_MAX_UPLOAD_MB = 0  # every byte is too many
    response = upload_task(client, VIDEOS["logo"], rects=[LOGO])
    assert response.status_code == 413
    assert "logo clip.mp4 is larger than the 0 MB upload limit" in response.json()["error"]["message"]
    settings.MEDIACRAFT_MAX_UPLOAD_MB = 100
    settings.MEDIACRAFT_USER_QUOTA_MB = 0
    response = upload_task(client, VIDEOS["logo"], rects=[LOGO])
    assert response.status_code == 413 and response.json()["error"]["code"] == "quota_exceeded"
    settings.MEDIACRAFT_USER_QUOTA_MB = 100
    settings.MEDIACRAFT_MIN_FREE_DISK_MB = 10**9
    response = upload_task(client, VIDEOS["logo"], rects=[LOGO])
    assert response.status_code == 507 and response.json()["error"]["code"] == "disk_full"
    assert StoredFile.objects.count() == 0 and Task.objects.count() == 0
    assert media_files() == before


def test_it_cancels_a_running_encode_and_leaves_nothing(workers, client):
    workers(1)
    task = upload_task(client, VIDEOS["long"], rects=[{"x": 100, "y": 100, "w": 200, "h": 100}],
                       method="removelogo").json()
    wait_for(lambda: client.get(f"/api/tasks/{task['task_id']}/").json()["progress"] > 1, 30, message="progress")
    running = client.get(f"/api/tasks/{task['task_id']}/").json()
    assert running["stats"]["speed"] and running["stats"]["fps"] is not None and running["stats"]["eta_seconds"] >= 0
    assert live_ffmpeg("long.mp4")
    client.post(f"/api/tasks/{task['task_id']}/cancel/")
    done = wait_done(client, task["task_id"], 5)
    assert done["status"] == "cancelled" and done["outputs"] == []
    wait_for(lambda: not live_ffmpeg("long.mp4"), 3, message="ffmpeg to be gone")
    assert not (Path(settings.MEDIA_ROOT) / "tasks" / task["task_id"] / "output").exists()


def test_it_reports_ffmpegs_own_words_when_it_fails(workers, client):
    task = upload_task(client, VIDEOS["logo"], rects=[LOGO]).json()  # queued: no worker yet
    # The input goes bad on disk after it was checked; ffmpeg's own error must reach the user.
    StoredFile.objects.get(pk=task["inputs"][0]["id"]).abs_path.write_bytes(b"\x00" * 4096)
    workers(1)
    done = wait_done(client, task["task_id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "ffmpeg_failed"
    assert "ffmpeg failed (exit code" in done["error"]["message"]
    assert "Invalid data" in done["error"]["detail"]
    assert str(Path(settings.MEDIA_ROOT).resolve()) not in done["error"]["detail"]  # no server paths
    assert "logo clip.mp4" in done["error"]["detail"]
    assert done["outputs"] == []


VIDEOS = {}


@pytest.fixture(autouse=True)
def _videos(videos):
    VIDEOS.update(videos)


def test_it_refuses_a_submit_naming_staged_files_when_the_disk_is_low(transactional_db, client, settings):
    upload = client.post("/api/files/", {"files": open(VIDEOS["logo"], "rb")})
    assert upload.status_code == 201, upload.content
    settings.MEDIACRAFT_MIN_FREE_DISK_MB = 10**9
    response = client.post("/api/tasks/", {"kind": "watermark", "params": {"files": [upload.json()[0]["id"]],
                                                                           "rects": [LOGO]}},
                           content_type="application/json")
    assert response.status_code == 507 and response.json()["error"]["code"] == "disk_full"
    assert Task.objects.count() == 0 and StoredFile.objects.get().task_id is None


def test_it_fails_a_result_that_does_not_fit_in_the_quota_and_keeps_nothing(workers, client_for, alice):
    workers(1, MEDIACRAFT_USER_QUOTA_MB=1)
    client = client_for(alice)
    # Fill the quota up to a few KB above the input: the result (about the input's size) cannot fit.
    StoredFile.objects.create(owner=alice, role="input", original_name="filler", stored_name="filler",
                              path="filler", size=1024 * 1024 - VIDEOS["logo"].stat().st_size - 4096, sha256="0")
    task = upload_task(client, VIDEOS["logo"], rects=[LOGO]).json()
    done = wait_for(lambda: (b := client.get(f"/api/tasks/{task['task_id']}/").json())["status"] not in
                    ("pending", "queued", "running", "retrying") and b, 60, message="the task to finish")
    assert done["status"] == "failed" and done["error"]["code"] == "output_quota_exceeded", done
    assert "does not fit in your storage quota of 1 MB" in done["error"]["message"]
    assert done["outputs"] == []
    output_dir = Path(settings.MEDIA_ROOT) / "tasks" / task["task_id"] / "output"
    assert not output_dir.exists() or not any(output_dir.iterdir())


def test_it_cleans_several_boxes_of_a_rotated_silent_phone_video(workers, client, tmp_path):
    """A phone video is stored landscape with a display rotation: boxes are in the upright frame
    the user sees, the output is upright, and a video without sound stays without."""
    stored_landscape = make_video(tmp_path / "raw.mp4", size="426x240", seconds=2, audio=False, logo=False,
                                  extra=("-vf", "drawbox=x=180:y=100:w=60:h=30:color=red@1:t=fill"))
    rotated = tmp_path / "竖拍.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-display_rotation", "90", "-i", str(stored_landscape),
                    "-c", "copy", str(rotated)], check=True, timeout=60)
    src = info(rotated)
    assert (src["width"], src["height"], src["has_audio"]) == (240, 426, False) and src["rotation"] in (90, 270)
    before = frame_rgb(rotated, 1, 240, 426)
    # The logo at (180, 100, 60x30) of the stored frame, turned a quarter either way.
    turned = [{"x": 100, "y": 426 - 180 - 60, "w": 30, "h": 60}, {"x": 240 - 100 - 30, "y": 180, "w": 30, "h": 60}]
    logo = max(turned, key=lambda box: redness(before, 240, box))
    second = {"x": 150, "y": 330, "w": 50, "h": 40}
    far = {"x": 20, "y": 20, "w": 40, "h": 40}
    workers(1)
    task = upload_task(client, rotated, rects=[logo, second], method="removelogo").json()
    done = wait_done(client, task["task_id"])
    assert done["status"] == "completed", done
    assert done["result"]["audio"] == "none" and done["result"]["size"] == "240x426"
    path = StoredFile.objects.get(pk=done["outputs"][0]["id"]).abs_path
    out = info(path)
    assert (out["width"], out["height"], out["has_audio"]) == (240, 426, False)
    after = frame_rgb(path, 1, 240, 426)
    assert redness(before, 240, logo) > 150 and redness(after, 240, logo) < 60
    assert region_mean_diff(before, after, 240, second) > 8  # filled in: changed
    assert region_mean_diff(before, after, 240, far) < 6  # untouched
