"""`merge` with real ffmpeg: stream copy when inputs match, re-encode with reasons otherwise."""

import json

import pytest

from storage.models import StoredFile
from tests.conftest import wait_for
from tests.media_helpers import info, make_video

VIDEOS = {}


@pytest.fixture(scope="session")
def merge_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    return {
        "a": make_video(root / "a.mp4", seconds=2, logo=False),
        "b": make_video(root / "b.mp4", seconds=3, logo=False, source="testsrc"),
        "wide": make_video(root / "wide.mp4", size="640x360", rate=30, seconds=2, audio_rate=48000),
        "silent": make_video(root / "silent.mp4", seconds=2, audio=False),
        "phone": make_video(root / "竖屏.mp4", size="240x426", rate=30, seconds=1, logo=False),
        "baseline": make_video(root / "baseline.mp4", seconds=2, logo=False, extra=("-profile:v", "baseline")),
        "high": make_video(root / "high.mp4", seconds=2, logo=False, extra=("-preset", "fast", "-profile:v", "high")),
    }


@pytest.fixture(autouse=True)
def _videos(merge_videos):
    VIDEOS.update(merge_videos)


def submit(client, names, **params):
    handles = [open(VIDEOS[n], "rb") for n in names]
    try:
        return client.post("/api/tasks/", {"kind": "merge", "params": json.dumps(params), "files": handles})
    finally:
        for h in handles:
            h.close()


def finished(client, task_id):
    return wait_for(lambda: (b := client.get(f"/api/tasks/{task_id}/").json())["status"] not in
                    ("pending", "queued", "running", "retrying") and b, 90, message="merge to finish")


def output_info(done):
    return info(StoredFile.objects.get(pk=done["outputs"][0]["id"]).abs_path)


def test_it_stream_copies_matching_inputs_in_order(workers, client):
    workers(1)
    response = submit(client, ["b", "a"])
    assert response.status_code == 201, response.content
    task = response.json()
    assert [f["name"] for f in task["inputs"]] == ["b.mp4", "a.mp4"]
    done = finished(client, task["task_id"])
    assert done["status"] == "completed", done
    assert done["result"]["mode"] == "copy" and done["result"]["reasons"] == []
    assert done["result"]["why"].startswith("all 2 inputs match (h264 (")
    assert "320x240 25 fps yuv420p, aac 44100 Hz 1 ch" in done["result"]["why"]
    out = output_info(done)
    assert abs(out["duration"] - 5.0) < 0.15
    assert (out["width"], out["height"], out["fps"], out["acodec"]) == (320, 240, 25.0, "aac")
    assert done["outputs"][0]["name"] == "b-merged.mp4"


def test_it_reencodes_mismatched_inputs_and_says_why(workers, client):
    workers(1)
    done = finished(client, submit(client, ["a", "wide", "silent"]).json()["task_id"])
    assert done["status"] == "completed", done
    result = done["result"]
    assert result["mode"] == "reencode"
    reasons = " ".join(result["reasons"])
    assert "width differs" in reasons and "fps differs" in reasons and "has_audio differs" in reasons
    out = output_info(done)
    assert (out["width"], out["height"], out["fps"]) == (320, 240, 25.0)  # the first input's
    assert out["has_audio"] and out["sample_rate"] == 48000 and out["channels"] == 2
    assert abs(out["duration"] - 6.0) < 0.3


def test_it_scales_to_a_chosen_size_and_frame_rate(workers, client):
    workers(1)
    done = finished(client, submit(client, ["phone", "a"], size="640x360", fps=30).json()["task_id"])
    assert done["status"] == "completed", done
    out = output_info(done)
    assert (out["width"], out["height"], out["fps"]) == (640, 360, 30.0)
    assert "size 640x360 chosen" in done["result"]["reasons"]


def test_it_reencodes_inputs_whose_h264_profiles_differ(workers, client):
    """A copy would keep the first input's codec parameters for both: browsers glitch on the second."""
    assert (info(VIDEOS["baseline"])["vprofile"], info(VIDEOS["high"])["vprofile"]) == ("Constrained Baseline", "High")
    workers(1)
    done = finished(client, submit(client, ["baseline", "high"]).json()["task_id"])
    assert done["status"] == "completed", done
    assert done["result"]["mode"] == "reencode"
    assert "vprofile differs (Constrained Baseline, High)" in done["result"]["reasons"]
    assert done["result"]["why"].startswith("re-encoded: vprofile differs")


@pytest.mark.parametrize(
    "names, params, field",
    [
        (["a"], {}, "files"),
        (["a", "b"], {"size": "big"}, "size"),
        (["a", "b"], {"size": "8x8"}, "size"),
        (["a", "b"], {"fps": 500}, "fps"),
        (["a", "b"], {"fps": "fast"}, "fps"),
        (["a", "b"], {"mode": "magic"}, "mode"),
        (["a", "b"], {"speed": 2}, "speed"),
    ],
)
def test_it_refuses_bad_merges(transactional_db, client, names, params, field):
    response = submit(client, names, **params)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert StoredFile.objects.count() == 0


def test_it_refuses_more_than_fifty_inputs(transactional_db, client, alice, client_for):
    ids = [str(f.pk) for f in StoredFile.objects.bulk_create(
        StoredFile(owner=alice, role="input", original_name=f"{i}.mp4", stored_name=f"{i}.mp4", path=f"x/{i}",
                   size=1, sha256="0", media={"width": 2}) for i in range(51))]
    response = client_for(alice).post("/api/tasks/", {"kind": "merge", "params": {"files": ids}},
                                      content_type="application/json")
    assert response.status_code == 400
    assert "2 to 50" in response.json()["error"]["message"]
