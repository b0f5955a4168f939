"""Seed 000's STRM endpoints: shapes, permissions, ownership, the one-sync-per-profile guard, and
the whole path through real RQ workers (full, incremental, listing failure, stop)."""

import json
import os

import pytest

from strm.models import StrmProfile
from tasks.models import Task
from tests.conftest import wait_for
from tests.strm_support import (
    DAV_PASSWORD, DAV_USER, dav_factory, expected_url, files_under, make_library, make_profile, strm_name, write,
)
from tests.strm_support import roots  # noqa: F401  (a fixture)

__all__ = ["dav_factory"]
S = Task.Status
SEED_TASK_FIELDS = {"task_id", "sync_type", "cloud_storage", "status", "progress", "started_at", "message"}


@pytest.fixture
def profile(db, roots):
    write(roots / "source" / "Show #1" / "ep 1 & 2.mkv")
    write(roots / "source" / "Show #1" / "ep 1 & 2.srt", "sub")
    return make_profile(name="movies", source_type="local", source_path=str(roots / "source"),
                        target_path=str(roots / "library"))


def post(client, url, body=None, **extra):
    data = "" if body is None else (body if isinstance(body, str) else json.dumps(body))
    return client.post(url, data=data, content_type="application/json", **extra)


def seed_ok(response):
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"success", "message", "data"} and body["success"] is True and body["message"]
    return body


def seed_error(response, status, code, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False and isinstance(body["message"], str) and body["message"]
    assert body["error"]["code"] == code and body["error"]["message"] == body["message"]
    if field:
        assert body["error"]["field"] == field
    return body


def wait_status(task_id, statuses, timeout=30):
    statuses = statuses if isinstance(statuses, (list, tuple)) else [statuses]
    wait_for(lambda: Task.objects.get(pk=task_id).status in statuses, timeout, message=f"{task_id} in {statuses}")
    return Task.objects.get(pk=task_id)


# --- shapes and rules, without workers ---------------------------------------------------------

def test_it_starts_a_full_sync_with_the_seed_shape_and_reports_the_running_one(profile, alice, bob, client_for):
    client = client_for(alice)
    body = seed_ok(post(client, "/api/strm/sync/full"))
    task_id = body["data"]["task_id"]
    assert body["data"]["status"] == "started" and body["message"] == f"Full sync started, task ID: {task_id}"
    task = Task.objects.get(pk=task_id)
    assert task.kind == "strm_sync" and task.owner == alice
    assert task.params == {"profile": profile.pk, "profile_name": "movies", "sync_type": "full", "trigger": "api"}

    for url, user in (("/api/strm/sync/incremental", alice), ("/api/strm/sync/full", bob)):
        again = seed_error(post(client_for(user), url), 409, "sync_running")
        assert again["data"] == {"task_id": task_id, "status": "pending"}
        assert again["error"]["task_id"] == task_id
    generic = post(client_for(bob), "/api/tasks/", {"kind": "strm_sync", "params": {"profile": "movies"}})
    assert generic.status_code == 409 and generic.json()["error"]["task_id"] == task_id
    assert Task.objects.filter(kind="strm_sync").count() == 1


def test_it_lists_shows_and_stops_my_syncs_in_the_seed_shapes(profile, alice, client_for):
    client = client_for(alice)
    task_id = seed_ok(post(client, "/api/strm/sync/start", {"profile": "movies", "sync_type": "full"}))["data"]["task_id"]

    listing = seed_ok(client.get("/api/strm/sync/tasks"))
    assert listing["data"]["count"] == 1 and listing["message"] == "Found 1 running tasks."
    item = listing["data"]["tasks"][0]
    assert SEED_TASK_FIELDS <= set(item)
    assert item["task_id"] == task_id and item["sync_type"] == "full" and item["cloud_storage"] == "movies"
    assert item["status"] == "pending" and item["progress"] == 0.0

    detail = seed_ok(client.get(f"/api/strm/sync/tasks/{task_id}"))
    assert detail["data"]["task_id"] == task_id and "result" in detail["data"]

    stopped = seed_ok(post(client, f"/api/strm/sync/tasks/{task_id}/stop"))
    assert stopped["data"] == {"task_id": task_id, "status": "stopped", "task_status": "cancelled"}
    assert stopped["message"] == f"Task {task_id} stopped."
    assert seed_ok(client.get("/api/strm/sync/tasks"))["data"] == {"tasks": [], "count": 0}
    seed_error(post(client, f"/api/strm/sync/tasks/{task_id}/stop"), 409, "not_cancellable")

    history = seed_ok(client.get("/api/strm/sync/history"))
    assert history["data"]["count"] == 1
    entry = history["data"]["history"][0]
    assert entry["status"] == "cancelled" and entry["completed_at"] and "result" in entry


def test_it_stops_all_my_syncs_but_nobody_elses(db, roots, alice, bob, client_for):
    first = make_profile(name="one", source_type="local", source_path=str(roots / "source"),
                         target_path=str(roots / "library" / "one"))
    make_profile(name="two", source_type="local", source_path=str(roots / "source"),
                 target_path=str(roots / "library" / "two"))
    mine = seed_ok(post(client_for(alice), "/api/strm/sync/full", {"profile": "one"}))["data"]["task_id"]
    theirs = seed_ok(post(client_for(bob), "/api/strm/sync/full", {"cloud_storage": "two"}))["data"]["task_id"]
    body = seed_ok(post(client_for(alice), "/api/strm/sync/stop"))
    assert body["data"]["task_ids"] == [mine] and body["data"]["count"] == 1
    assert Task.objects.get(pk=mine).status == S.CANCELLED
    assert Task.objects.get(pk=theirs).status != S.CANCELLED
    assert first.pk == Task.objects.get(pk=mine).params["profile"]


def test_it_filters_and_limits_the_history(profile, alice, client_for):
    client = client_for(alice)
    made = []
    for sync_type, status in (("full", S.COMPLETED), ("incremental", S.COMPLETED), ("full", S.FAILED),
                              ("incremental", S.TIMEOUT), ("full", S.RUNNING)):
        task_id = seed_ok(post(client, f"/api/strm/sync/{sync_type}"))["data"]["task_id"]
        result = {"totals": {"generated": 3, "skipped": 1, "failed": 0, "deleted": 2}, "generated": ["a.strm"],
                  "skipped": [], "failed": [], "deleted": []} if status == S.COMPLETED else None
        Task.objects.filter(pk=task_id).update(status=status, result=result, error_code="strm_listing_failed"
                                               if status == S.FAILED else "", error_params={"count": 1, "paths": "x/"})
        made.append(task_id)
    everything = seed_ok(client.get("/api/strm/sync/history"))["data"]
    assert everything["count"] == 4 and everything["total"] == 4  # the running one is not history
    assert [h["task_id"] for h in everything["history"]] == made[3::-1]
    full_done = seed_ok(client.get("/api/strm/sync/history", {"sync_type": "full", "status": "completed"}))["data"]
    assert [h["task_id"] for h in full_done["history"]] == [made[0]]
    assert full_done["history"][0]["message"] == "Sync completed: 3 generated, 1 skipped, 0 failed, 2 deleted."
    assert full_done["history"][0]["result"]["generated"] == ["a.strm"]
    failed = seed_ok(client.get("/api/strm/sync/history", {"status": "failed"}))["data"]["history"]
    assert {h["task_id"] for h in failed} == {made[2], made[3]}  # a timeout is a failure to seed clients
    assert {h["task_status"] for h in failed} == {"failed", "timeout"}
    assert failed[-1]["message"] == "Listing failed in 1 places, so nothing was deleted: x/"
    assert seed_ok(client.get("/api/strm/sync/history", {"limit": "1"}))["data"]["count"] == 1
    for params, field in (({"limit": "0"}, "limit"), ({"limit": "abc"}, "limit"), ({"limit": "101"}, "limit"),
                          ({"sync_type": "partial"}, "sync_type"), ({"status": "running"}, "status"),
                          ({"status": "bogus"}, "status")):
        seed_error(client.get("/api/strm/sync/history", params), 400, "invalid_params", field)


def test_it_refuses_bad_requests_naming_the_problem(db, roots, alice, client_for):
    client = client_for(alice)
    seed_error(post(client, "/api/strm/sync/full"), 400, "invalid_params", "profile")  # no profile yet
    for name in ("one", "two"):
        make_profile(name=name, source_type="local", source_path=str(roots / "source"),
                     target_path=str(roots / "library" / name))
    body = seed_error(post(client, "/api/strm/sync/full"), 400, "invalid_params", "profile")
    assert "one, two" in body["message"]
    seed_error(post(client, "/api/strm/sync/full", {"profile": "three"}), 400, "invalid_params", "profile")
    seed_error(post(client, "/api/strm/sync/full", {"profile": ["one"]}), 400, "invalid_params", "profile")
    seed_error(post(client, "/api/strm/sync/full", "{not json"), 400, "bad_json")
    seed_error(post(client, "/api/strm/sync/full", [1]), 400, "bad_json")
    seed_error(post(client, "/api/strm/sync/full", {"profile": "one", "target_path": "/"}), 400, "unknown_field",
               "target_path")
    seed_error(post(client, "/api/strm/sync/start", {"profile": "one", "sync_type": "partial"}), 400,
               "invalid_params", "sync_type")
    numbered = make_profile(name="115", source_type="local", source_path=str(roots / "source"),
                            target_path=str(roots / "library" / "115"))
    assert StrmProfile.objects.filter(name="one").first().pk != 115
    by_name = seed_ok(post(client, "/api/strm/sync/full", {"cloud_storage": "115"}))["data"]
    assert by_name["profile"] == "115"  # a name, as seed clients send it, wins over an id
    by_id = seed_ok(post(client, "/api/strm/sync/full", {"profile": StrmProfile.objects.get(name="one").pk}))["data"]
    assert by_id["profile"] == "one"
    Task.objects.all().delete()
    numbered.delete()
    StrmProfile.objects.filter(name="two").update(enabled=False)
    seed_error(post(client, "/api/strm/sync/full", {"profile": "two"}), 400, "invalid_params", "profile")
    assert not Task.objects.exists()
    started = seed_ok(post(client, "/api/strm/sync/full"))  # now only one is enabled: it is the default
    assert Task.objects.get(pk=started["data"]["task_id"]).params["profile_name"] == "one"


def test_it_is_for_operators_only_and_hides_other_peoples_tasks(profile, alice, bob, charlie, client_for):
    task_id = seed_ok(post(client_for(alice), "/api/strm/sync/full"))["data"]["task_id"]
    for client in (client_for(charlie), client_for()):
        seed_error(post(client, "/api/strm/sync/full"), 403, "forbidden_kind")
        seed_error(client.get("/api/strm/sync/tasks"), 403, "forbidden_kind")
        seed_error(client.get(f"/api/strm/sync/tasks/{task_id}"), 403, "forbidden_kind")
        seed_error(client.get("/api/strm/sync/history"), 403, "forbidden_kind")
        seed_error(client.get("/api/strm/profiles"), 403, "forbidden_kind")
    generic = post(client_for(charlie), "/api/tasks/", {"kind": "strm_sync", "params": {}})
    assert generic.status_code == 403
    bob_client = client_for(bob)
    seed_error(bob_client.get(f"/api/strm/sync/tasks/{task_id}"), 404, "not_found")
    seed_error(post(bob_client, f"/api/strm/sync/tasks/{task_id}/stop"), 404, "not_found")
    seed_error(bob_client.get("/api/strm/sync/tasks/not-a-uuid"), 404, "not_found")
    assert seed_ok(bob_client.get("/api/strm/sync/tasks"))["data"]["count"] == 0
    assert seed_ok(bob_client.get("/api/strm/sync/history"))["data"]["count"] == 0
    assert Task.objects.get(pk=task_id).status != S.CANCELLED
    # A task of another kind is not a sync, even for its owner.
    other = Task.objects.create(owner=alice, kind="command", params={}, timeout=5)
    seed_error(client_for(alice).get(f"/api/strm/sync/tasks/{other.pk}"), 404, "not_found")


def test_it_lists_profiles_without_secrets(profile, alice, client_for, roots):
    make_profile(name="dav", source_type="webdav", source_url="http://127.0.0.1:5244/dav/movies",
                 source_username="u", source_password="very-secret", target_path=str(roots / "dav-library"))
    response = client_for(alice).get("/api/strm/profiles")
    body = seed_ok(response)
    assert [p["name"] for p in body["data"]["profiles"]] == ["dav", "movies"]
    assert "very-secret" not in response.content.decode()


def test_the_api_requires_csrf_from_browser_sessions(profile, alice):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    seed_error(post(client, "/api/strm/sync/full"), 403, "csrf_failed")
    assert not Task.objects.exists()


# --- through real workers ----------------------------------------------------------------------

def test_it_runs_full_and_incremental_syncs_from_webdav_through_a_worker(workers, alice, roots, dav_factory,
                                                                      client_for):
    source, library = roots / "source", roots / "library"
    media, sidecars = make_library(source, shows=4, seasons=2, episodes=6)
    dav = dav_factory(source)
    make_profile(name="cloud", source_type="webdav", source_url=dav.url, source_username=DAV_USER,
                 source_password=DAV_PASSWORD, target_path=str(library))
    workers(1, MEDIACRAFT_STRM_ROOTS=str(roots))
    client = client_for(alice)

    task_id = seed_ok(post(client, "/api/strm/sync/full", {"cloud_storage": "cloud"}))["data"]["task_id"]
    task = wait_status(task_id, [S.COMPLETED, S.FAILED])
    assert task.status == S.COMPLETED, (task.error_code, task.error_detail)
    detail = seed_ok(client.get(f"/api/strm/sync/tasks/{task_id}"))["data"]
    assert detail["status"] == "completed" and detail["progress"] == 100.0 and detail["completed_at"]
    result = detail["result"]
    assert set(result) >= {"generated", "skipped", "failed", "deleted", "totals"}
    assert result["totals"]["generated"] == len(media) + len(sidecars)
    assert task.stats["listed"] >= len(media) + len(sidecars) and task.stats["files_per_second"] > 0
    for rel in media:
        assert (library / strm_name(rel)).read_text() == expected_url(dav.url, rel)

    os.remove(source / media[0])
    write(source / "New Show" / "pilot #1.mkv")
    task_id = seed_ok(post(client, "/api/strm/sync/start", {"profile": "cloud"}))["data"]["task_id"]
    task = wait_status(task_id, [S.COMPLETED, S.FAILED])
    assert task.params["sync_type"] == "incremental"
    assert task.result["generated"] == ["New Show/pilot #1.strm"]
    assert task.result["deleted"] == [strm_name(media[0])]
    assert (library / "New Show" / "pilot #1.strm").read_text() == expected_url(dav.url, "New Show/pilot #1.mkv")
    history = seed_ok(client.get("/api/strm/sync/history"))["data"]["history"]
    assert [h["sync_type"] for h in history] == ["incremental", "full"]


def test_a_listing_failure_fails_the_task_naming_the_folder_through_a_worker(workers, alice, roots, dav_factory,
                                                                          client_for):
    source, library = roots / "source", roots / "library"
    write(source / "Good" / "a.mkv")
    write(source / "Broken & 坏" / "b.mkv")
    write(library / "orphan.strm", "kept")
    dav = dav_factory(source)
    dav.fail.add("Broken & 坏")
    dav.fail_status = "404 Not Found"  # vanished while listing; not retried, so the test stays quick
    make_profile(name="cloud", source_type="webdav", source_url=dav.url, source_username=DAV_USER,
                 source_password=DAV_PASSWORD, target_path=str(library))
    workers(1, MEDIACRAFT_STRM_ROOTS=str(roots))
    client = client_for(alice)
    task_id = seed_ok(post(client, "/api/strm/sync/full"))["data"]["task_id"]
    task = wait_status(task_id, [S.COMPLETED, S.FAILED], 60)
    assert task.status == S.FAILED and task.error_code == "strm_listing_failed"
    assert task.attempts == 1  # not retried: the listing is what failed
    detail = seed_ok(client.get(f"/api/strm/sync/tasks/{task_id}"))["data"]
    assert detail["status"] == "failed"
    assert detail["message"] == "Listing failed in 1 places, so nothing was deleted: Broken & 坏/"
    assert files_under(library) == {"orphan.strm", "Good/a.strm"}


def test_a_running_sync_stops_on_request_keeping_what_it_wrote(workers, alice, roots, dav_factory, client_for):
    source, library = roots / "source", roots / "library"
    for i in range(60):
        write(source / f"Folder {i}" / f"ep {i}.mkv")
    dav = dav_factory(source)
    dav.delay = 0.15
    profile = make_profile(name="slow", source_type="webdav", source_url=dav.url, source_username=DAV_USER,
                           source_password=DAV_PASSWORD, target_path=str(library), listing_concurrency=1)
    workers(1, MEDIACRAFT_STRM_ROOTS=str(roots))
    client = client_for(alice)
    task_id = seed_ok(post(client, "/api/strm/sync/full"))["data"]["task_id"]
    wait_for(lambda: len(files_under(library)) >= 3, 30, message="some files written")
    assert seed_error(post(client, "/api/strm/sync/full"), 409, "sync_running")["data"]["task_id"] == task_id
    body = seed_ok(post(client, f"/api/strm/sync/tasks/{task_id}/stop"))
    assert body["data"]["status"] in ("stopping", "stopped")
    task = wait_status(task_id, S.CANCELLED, 10)
    written = files_under(library)
    assert 3 <= len(written) < 60 and not [p for p in written if ".mcsync-" in p]
    for rel in written:
        assert (library / rel).read_text() == expected_url(dav.url, rel[: -len(".strm")] + ".mkv")
    wait_for(lambda: StrmProfile.objects.get(pk=profile.pk).running_task_id is None, 5, message="claim released")
    assert task.error_code == ""


def test_simultaneous_requests_start_exactly_one_sync(transactional_db, roots, alice, bob):
    import threading

    from django.db import connection

    from strm import services

    profile = make_profile(name="busy", source_type="local", source_path=str(roots / "source"),
                           target_path=str(roots / "library"))
    barrier = threading.Barrier(4)
    outcomes = []

    def request(user):
        try:
            barrier.wait()
            task = services.strm_sync_submit(owner=user, profile=profile, sync_type="full")
            outcomes.append(("started", str(task.pk)))
        except services.SyncRunning as exc:
            outcomes.append(("running", str(exc.task.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(user,)) for user in (alice, bob, alice, bob)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    started = [task_id for what, task_id in outcomes if what == "started"]
    assert len(outcomes) == 4 and len(started) == 1
    assert {task_id for _what, task_id in outcomes} == set(started)  # the others were told which one
    assert Task.objects.filter(kind="strm_sync").count() == 1
