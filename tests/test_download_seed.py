"""Seed 001's endpoints with its shapes (POST /api/tasks/submit, GET /api/tasks/{id},
GET /api/tasks?status=&limit=, POST /api/tasks/{id}/cancel), next to ours with a trailing slash,
which keep working unchanged."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from downloads.selectors import SeedStatus, download_tasks, seed_status
from tasks import services
from tasks.models import Task
from tests.conftest import submit_command, wait_for
from tests.download_support import MB, aria2d, file_server, generated, sha256  # noqa: F401 (fixtures)

S = Task.Status
TASK_RESPONSE = {"task_id", "status", "message", "json_url", "progress", "draft_path", "error_message",
                 "created_at", "updated_at", "completed_at"}
PROGRESS = {"total_files", "completed_files", "failed_files", "total_size", "downloaded_size", "progress_percent",
            "download_speed", "eta_seconds"}
RULE_GROUP = {"id": "group_1", "title": "测试规则组", "rules": [{"type": "video"}]}
DRAFT_CONFIG = {"canvas_config": {"canvas_width": 1920, "canvas_height": 1080}, "fps": 30}


@pytest.fixture(autouse=True)
def private_allowed(settings):
    settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE = True


def client_of(user=None, **kwargs):
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


def post(client, url, body):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(url, data, content_type="application/json")


def seed_body(*videos, audios=(), **extra):
    return {"ruleGroup": RULE_GROUP, "materials": {"videos": list(videos), "audios": list(audios)},
            "draft_config": DRAFT_CONFIG, **extra}


def refusal(response, status, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"detail", "error"} and body["detail"] == body["error"]["message"], body
    if field:
        assert body["error"].get("field") == field, body
    return body["error"]


def test_it_submits_seed_001s_body_as_a_download_of_every_material_url(db, alice):
    client = client_of(alice)
    body = seed_body(
        {"id": "m1", "name": "开场.mp4", "path": "http://127.0.0.1:9/v/1.mp4", "type": "video"},
        {"id": "m2", "path": "C:/local/clip.mp4"},  # a local file of the client: nothing to download
        "http://127.0.0.1:9/v/2.mp4",
        {"id": "m3", "path": "http://127.0.0.1:9/v/1.mp4"},  # the same URL again: fetched once
        audios=[{"id": "a1", "name": "bgm.mp3", "url": "ftp://127.0.0.1:9/a/bgm.mp3"}],
        testData={"items": []}, use_raw_segments=False,
    )
    response = post(client, "/api/tasks/submit", body)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert TASK_RESPONSE <= set(answer)
    assert answer["status"] == "pending" and answer["progress"] is None and answer["draft_path"] is None
    assert answer["error_message"] is None and answer["completed_at"] is None and answer["message"]
    task = Task.objects.get(pk=answer["task_id"])
    assert task.kind == "download" and task.owner == alice and task.title == "测试规则组"
    assert task.params == {
        "urls": ["http://127.0.0.1:9/v/1.mp4", "http://127.0.0.1:9/v/2.mp4", "ftp://127.0.0.1:9/a/bgm.mp3"],
        "names": ["开场.mp4", None, "bgm.mp3"], "connections": 4, "ruleGroup": RULE_GROUP,
        "draft_config": DRAFT_CONFIG,
    }
    # The newer list form of materials works as well.
    response = post(client, "/api/tasks/submit", {"ruleGroup": {"id": "g"}, "draft_config": {},
                                                  "materials": [{"path": "http://127.0.0.1:9/x.png", "type": "image"}]})
    assert response.status_code == 200, response.content
    assert Task.objects.get(pk=response.json()["task_id"]).params["urls"] == ["http://127.0.0.1:9/x.png"]


@pytest.mark.parametrize("body, field, words", [
    ("not json", None, "not valid JSON"),
    ([], None, "JSON object"),
    ({"materials": {"videos": []}}, "ruleGroup", "ruleGroup is required"),
    ({"ruleGroup": {}, "draft_config": {}}, "materials", "materials is required"),
    (seed_body("file:///etc/passwd"), "materials", "only http, https and ftp"),
    (seed_body(42), "materials.videos.0", "URL or an object"),
    ({"ruleGroup": {}, "materials": {"videos": [], "subtitles": []}}, "materials", "unknown group subtitles"),
    ({"ruleGroup": {}, "materials": "http://x/y"}, "materials", "videos and audios"),
    (seed_body("http://127.0.0.1:9/a", draft_config=[1]), "draft_config", "JSON object"),
    (seed_body("http://127.0.0.1:9/a", priority=9), "priority", "Unknown field: priority"),
])
def test_it_refuses_a_bad_seed_body_in_both_error_shapes(db, body, field, words):
    error = refusal(post(client_of(), "/api/tasks/submit", body), 400, field)
    assert words in error["message"], error
    assert Task.objects.count() == 0 and get_user_model().objects.count() == 0  # no visitor either


def test_it_refuses_private_material_urls_unless_allowed(db, alice, settings):
    settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE = False
    error = refusal(post(client_of(alice), "/api/tasks/submit", seed_body("http://169.254.169.254/latest/")), 400,
                    "materials")
    assert error["code"] == "url_private" and "169.254.169.254" in error["message"]


def test_it_maps_our_statuses_onto_seed_001s(db, alice):
    tasks = {}
    cases = [
        (S.PENDING, "", SeedStatus.PENDING), (S.QUEUED, "", SeedStatus.PENDING),
        (S.RETRYING, "", SeedStatus.PENDING), (S.RUNNING, "starting", SeedStatus.PENDING),
        (S.RUNNING, "downloading", SeedStatus.DOWNLOADING), (S.RUNNING, "finishing", SeedStatus.PROCESSING),
        (S.COMPLETED, "done", SeedStatus.COMPLETED), (S.FAILED, "", SeedStatus.FAILED),
        (S.TIMEOUT, "", SeedStatus.FAILED), (S.CANCELLED, "", SeedStatus.CANCELLED),
    ]
    for status, stage, seed in cases:
        task = services.task_submit(owner=alice, kind="download", params={"urls": ["http://127.0.0.1:9/a"]})
        Task.objects.filter(pk=task.pk).update(status=status, stage=stage)
        task.refresh_from_db()
        assert seed_status(task) == seed, (status, stage)
        tasks[task.pk] = seed
    for seed in SeedStatus:
        listed = set(download_tasks(user=alice, status=seed).values_list("pk", flat=True))
        assert listed == {pk for pk, s in tasks.items() if s == seed}, seed


def test_it_serves_seed_routes_and_ours_side_by_side(db, alice, bob, tool):
    client = client_of(alice)
    first = post(client, "/api/tasks/submit", seed_body("http://127.0.0.1:9/a.mp4")).json()
    second = post(client, "/api/tasks/submit", seed_body("http://127.0.0.1:9/b.mp4")).json()
    command = submit_command(alice, steps=1)

    # GET /api/tasks/{id}: seed shape. GET /api/tasks/{id}/: ours, unchanged.
    seed = client.get(f"/api/tasks/{first['task_id']}")
    assert seed.status_code == 200 and TASK_RESPONSE <= set(seed.json()) and seed.json()["status"] == "pending"
    ours = client.get(f"/api/tasks/{first['task_id']}/")
    assert ours.status_code == 200 and ours.json()["kind"] == "download" and "stage_label" in ours.json()

    # GET /api/tasks?status=&limit=: seed list of download tasks only; GET /api/tasks/: ours, every kind.
    listing = client.get("/api/tasks?status=pending&limit=1")
    assert listing.status_code == 200
    body = listing.json()
    assert set(body) == {"tasks", "total", "limit", "offset"}
    assert body["total"] == 2 and body["limit"] == 1 and [t["task_id"] for t in body["tasks"]] == [second["task_id"]]
    assert client.get("/api/tasks?limit=5&offset=1").json()["tasks"][0]["task_id"] == first["task_id"]
    assert client.get("/api/tasks?status=completed").json()["total"] == 0
    ours = client.get("/api/tasks/").json()
    assert ours["count"] == 3 and {t["kind"] for t in ours["items"]} == {"download", "command"}
    for query, field in (("status=running", "status"), ("limit=0", "limit"), ("limit=abc", "limit"),
                         ("offset=-1", "offset")):
        refusal(client.get(f"/api/tasks?{query}"), 400, field)

    # Only download tasks, only one's own: anything else is a 404 in both shapes.
    refusal(client.get(f"/api/tasks/{command.pk}"), 404)
    refusal(client_of(bob).get(f"/api/tasks/{first['task_id']}"), 404)
    refusal(client_of(bob).post(f"/api/tasks/{first['task_id']}/cancel"), 404)
    assert client_of(bob).get(f"/api/tasks/{first['task_id']}/").status_code == 404
    assert client_of(bob).get("/api/tasks").json()["total"] == 0
    refusal(client.get("/api/tasks/not-a-uuid"), 404)

    # POST /api/tasks/{id}/cancel: seed's {"success", "message"}; a second time it has finished.
    cancelled = client.post(f"/api/tasks/{first['task_id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json() == {"success": True, "message": f"Task {first['task_id']} was cancelled.",
                                     "task_id": first["task_id"], "status": "cancelled"}
    again = client.post(f"/api/tasks/{first['task_id']}/cancel").json()
    assert again["success"] is False and "already finished" in again["message"]
    # Ours, with the slash, still answers in its own shape (409 for a finished task).
    assert client.post(f"/api/tasks/{first['task_id']}/cancel/").status_code == 409
    assert client.post(f"/api/tasks/{second['task_id']}/cancel/").json()["status"] == "cancelled"
    assert client.get(f"/api/tasks/{second['task_id']}").json()["status"] == "cancelled"


def test_it_checks_csrf_on_seed_writes(db, alice):
    client = client_of(alice, enforce_csrf_checks=True)
    refusal(post(client, "/api/tasks/submit", seed_body("http://127.0.0.1:9/a")), 403)
    assert Task.objects.count() == 0


def test_it_reports_a_seed_task_downloading_and_done(workers, aria2d, file_server, alice):
    video = generated(12 * MB, 21)
    audio = generated(MB, 22)
    urls = [file_server.add("/seed/video.mp4", video, rate=4 * MB), file_server.add("/seed/audio.mp3", audio),
            file_server.url("/seed/missing.png")]
    workers(1, **aria2d.env, MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE="true")
    client = client_of(alice)
    body = {"ruleGroup": RULE_GROUP, "draft_config": DRAFT_CONFIG,
            "materials": {"videos": [{"path": urls[0], "name": "片头.mp4"}], "audios": [urls[1]], "images": [urls[2]]}}
    task_id = post(client, "/api/tasks/submit", body).json()["task_id"]
    seen = []

    def finished():
        answer = client.get(f"/api/tasks/{task_id}").json()
        seen.append(answer)
        return answer["status"] in ("completed", "failed")

    wait_for(finished, 60, interval=0.1, message="the seed task to finish")
    downloading = [a for a in seen if a["status"] == "downloading"]
    assert downloading, [a["status"] for a in seen]
    assert all(PROGRESS <= set(a["progress"]) and a["progress"]["total_files"] == 3 for a in downloading)
    done = seen[-1]
    assert done["status"] == "completed" and done["completed_at"] and done["updated_at"] >= done["created_at"]
    assert done["progress"]["completed_files"] == 2 and done["progress"]["failed_files"] == 1
    assert done["progress"]["downloaded_size"] == len(video) + len(audio)
    assert done["progress"]["progress_percent"] == 100.0 and done["progress"]["eta_seconds"] == 0
    assert "1 of 3 files could not be downloaded: missing.png" == done["error_message"]
    assert {o["name"] for o in done["outputs"]} == {"片头.mp4", "audio.mp3"}
    assert [f["url"] for f in done["failures"]] == [urls[2]]
    video_out = next(o for o in done["outputs"] if o["name"] == "片头.mp4")
    response = client.get(video_out["url"])
    assert response.status_code == 200 and sha256(b"".join(response.streaming_content)) == sha256(video)
    assert client_of().get(video_out["url"]).status_code == 404
    assert aria2d.downloads_of(task_id) == []
    listed = client.get("/api/tasks?status=completed").json()
    assert [t["task_id"] for t in listed["tasks"]] == [task_id]


@pytest.mark.parametrize("materials", [{"videos": [], "audios": []}, {"videos": [{"path": "C:/only/local.mp4"}]}])
def test_a_rule_group_with_nothing_to_download_completes_at_once(workers, alice, materials):
    """Seed 001's own smoke test submits empty materials; a rule group of the client's local files
    has no URL either. Both are tasks that complete with nothing downloaded, without aria2."""
    workers(1)
    client = client_of(alice)
    response = post(client, "/api/tasks/submit", {"ruleGroup": {"id": "test", "title": "测试"}, "materials": materials,
                                                  "draft_config": {"canvas_width": 1920, "canvas_height": 1080}})
    assert response.status_code == 200, response.content
    task_id = response.json()["task_id"]
    wait_for(lambda: client.get(f"/api/tasks/{task_id}").json()["status"] == "completed", 30,
             message="the empty task to complete")
    done = client.get(f"/api/tasks/{task_id}").json()
    assert done["progress"]["total_files"] == 0 and done["progress"]["progress_percent"] == 100.0
    assert done["outputs"] == [] and done["error_message"] is None
    assert Task.objects.get(pk=task_id).title == "测试"
