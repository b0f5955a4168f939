"""Calibration without qBittorrent: what is accepted and refused (with a clear 4xx naming the bad
entry, leaving nothing behind), who may calibrate, whose tasks are visible, seed 004's shapes and
status mapping, the connection's password in the admin, and the page form."""

import json

import pytest

from tasks.models import Task, TaskKind
from tasks.processors import get_processor
from torrents.models import QbittorrentConnection
from torrents.calibrate import ref_hashes
from torrents.refs import MAX_ENTRIES, clean_refs, parse_ref

V1 = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
V2 = "a" * 64
B32 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK"  # V1 in base32
S = Task.Status


@pytest.fixture
def connection(db):
    conn = QbittorrentConnection(name="main", url="http://127.0.0.1:9", username="admin")
    conn.set_password("secret")
    conn.save()
    return conn


def post(client, url, body, **extra):
    return client.post(url, data=json.dumps(body), content_type="application/json", **extra)


def submit(client, params, **fields):
    return post(client, "/api/tasks/", {"kind": "calibration", "params": params, **fields})


def error_of(response, status, code=None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code
    return error


# --- input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("entries, index, fragment", [
    (["nothex"], 1, "40- or 64-character"),
    ([V1, V1[:39]], 2, "40- or 64-character"),
    ([V1 + "0"], 1, "40- or 64-character"),
    ([V2 + "0"], 1, "40- or 64-character"),
    (["g" * 40], 1, "40- or 64-character"),
    (["magnet:?dn=no-hash"], 1, "no BitTorrent info hash"),
    (["magnet:?xt=urn:btih:zz"], 1, "neither 40 hexadecimal digits nor 32 base32"),
    ([f"magnet:?xt=urn:btmh:1221{V2}"], 1, "1220 followed by 64"),
    ([f"magnet:?xt=urn:btih:{V1}&xt=urn:btih:{'b' * 40}"], 1, "more than one torrent"),
    ([f"magnet:?xt=urn:btih:{V1}&dn=a b"], 1, "spaces or control characters"),
    ([V1, 42], 2, "not text"),
])
def test_it_refuses_a_bad_entry_naming_it_and_stores_nothing(connection, alice, client_for, entries, index, fragment):
    client = client_for(alice)
    error = error_of(submit(client, {"hashes": entries}), 400, "invalid_params")
    assert f"Entry {index}" in error["message"] and fragment in error["message"], error["message"]
    if isinstance(entries[index - 1], str):
        assert entries[index - 1][:30] in error["message"]
    assert error["field"] == f"hashes.{index - 1}"
    assert not Task.objects.exists()


@pytest.mark.parametrize("params, field, fragment", [
    ({}, "hashes", "at least one"),
    ({"hashes": []}, "hashes", "at least one"),
    ({"hashes": "  \n "}, "hashes", "at least one"),
    ({"hashes": {"a": 1}}, "hashes", "must be a list"),
    ({"hashes": [V1] * (MAX_ENTRIES + 1)}, "hashes", f"at most {MAX_ENTRIES}"),
    ({"hashes": [V1], "speed": 1}, "speed", "Unknown parameter"),
    ({"hashes": [V1], "connection": "nope"}, "connection", "no enabled qBittorrent connection nope"),
    ({"hashes": [V1], "connection": True}, "connection", "name or id"),
])
def test_it_refuses_bad_params(connection, alice, client_for, params, field, fragment):
    error = error_of(submit(client_for(alice), params), 400)
    assert error["field"] == field and fragment in error["message"], error
    assert not Task.objects.exists()


def test_it_normalises_and_merges_entries_and_names_the_task(connection, alice, client_for):
    magnet = f"magnet:?xt=urn:btih:{B32}&dn=My%20Show&x.pe=127.0.0.1:1"
    hybrid = f"magnet:?xt=urn:btih:{'b' * 40}&xt=urn:btmh:1220{V2}"
    response = submit(client_for(alice), {"hashes": f"{V1.upper()}\n{magnet}\n\n{V2.upper()}  {hybrid}\n{V1}"})
    assert response.status_code == 201, response.content
    task = Task.objects.get()
    # The magnet replaced the bare hash of the same torrent; the v2 hash merged into the hybrid magnet.
    assert task.params == {"connection": connection.pk, "connection_name": "main", "hashes": [magnet, hybrid]}
    assert task.title == "My Show +1" and task.kind == TaskKind.CALIBRATION and task.timeout == 60
    assert clean_refs([V2]) == [V2] and clean_refs(B32.join(["magnet:?xt=urn:btih:", ""])) == [
        f"magnet:?xt=urn:btih:{B32}"]


def test_it_needs_a_connection_and_lets_the_caller_choose_among_several(db, alice, client_for):
    client = client_for(alice)
    error = error_of(submit(client, {"hashes": [V1]}), 400)
    assert error["field"] == "connection" and "No qBittorrent connection is set up" in error["message"]
    for name in ("home", "seedbox"):
        QbittorrentConnection.objects.create(name=name, url="http://127.0.0.1:9")
    QbittorrentConnection.objects.create(name="old", url="http://127.0.0.1:9", enabled=False)
    error = error_of(submit(client, {"hashes": [V1]}), 400)
    assert "home, seedbox" in error["message"]
    error_of(submit(client, {"hashes": [V1], "connection": "old"}), 400)
    assert submit(client, {"hashes": [V1], "connection": "seedbox"}).status_code == 201
    seedbox = QbittorrentConnection.objects.get(name="seedbox")
    assert Task.objects.get().params["connection"] == seedbox.pk


# --- who ----------------------------------------------------------------------------------------

def test_it_lets_only_operators_calibrate(connection, charlie, client_for):
    for client in (client_for(charlie), client_for()):
        error_of(submit(client, {"hashes": [V1]}), 403, "forbidden_kind")
        error_of(post(client, "/api/calibrate/async", {"info_hash": V1}), 403, "forbidden_kind")
    assert not Task.objects.exists()
    processor = get_processor(TaskKind.CALIBRATION)
    assert processor.form_class(charlie) is None and processor.form_class(None) is None


def test_it_shows_a_calibration_only_to_its_owner(connection, alice, bob, client_for, tool):
    from tests.conftest import submit_command

    task_id = post(client_for(alice), "/api/calibrate/async", {"info_hash": V1}).json()["task_id"]
    for url in (f"/api/calibrate/status/{task_id}", f"/api/tasks/{task_id}/"):
        assert client_for(alice).get(url).status_code == 200
        error_of(client_for(bob).get(url), 404, "not_found")
        error_of(client_for().get(url), 404)
    error_of(client_for(alice).get("/api/calibrate/status/not-a-uuid"), 404)
    other_kind = submit_command(alice)
    error_of(client_for(alice).get(f"/api/calibrate/status/{other_kind.pk}"), 404)


# --- seed 004 -----------------------------------------------------------------------------------

def test_it_accepts_seed_004_submissions_with_its_shape(connection, alice, client_for):
    client = client_for(alice)
    response = post(client, "/api/calibrate/async", {"info_hash": V1})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"task_id", "status"} and body["status"] == "pending"
    task = Task.objects.get(pk=body["task_id"])
    assert task.owner == alice and task.params["hashes"] == [V1] and task.timeout == 60

    status = client.get(f"/api/calibrate/status/{task.pk}").json()
    assert status == {"task_id": str(task.pk), "status": "pending", "info_hash": V1}

    magnet = f"magnet:?xt=urn:btih:{V1.upper()}&dn=x"
    with_options = post(client, "/api/calibrate/async", {"info_hash": magnet, "timeout": 5, "connection": "main"})
    assert with_options.status_code == 200
    assert Task.objects.get(pk=with_options.json()["task_id"]).timeout == 5


@pytest.mark.parametrize("body, status, field, fragment", [
    ({}, 400, "info_hash", "info_hash is required"),
    ({"info_hash": ""}, 400, "info_hash", "info_hash is required"),
    ({"info_hash": 7}, 400, "info_hash", "info_hash is required"),
    ({"info_hash": "abc"}, 400, "info_hash", "Entry 1 (abc) is not usable"),
    ({"info_hash": V1, "extra": 1}, 400, "extra", "Unknown field: extra"),
    ({"info_hash": V1, "timeout": 0}, 400, "timeout", "timeout must be a whole number"),
    ([V1], 400, None, "JSON object"),
])
def test_it_refuses_bad_seed_004_submissions(connection, alice, client_for, body, status, field, fragment):
    error = error_of(post(client_for(alice), "/api/calibrate/async", body), status)
    assert fragment in error["message"] and error.get("field") == field, error
    assert not Task.objects.exists()


def test_it_maps_engine_statuses_onto_seed_004s(connection, alice, client_for):
    client = client_for(alice)
    task_id = post(client, "/api/calibrate/async", {"info_hash": V1}).json()["task_id"]
    url = f"/api/calibrate/status/{task_id}"

    def shape(**fields):
        Task.objects.filter(pk=task_id).update(**fields)
        return client.get(url).json()

    for engine, seed in ((S.QUEUED, "pending"), (S.RETRYING, "pending"), (S.RUNNING, "running")):
        assert shape(status=engine) == {"task_id": task_id, "status": seed, "info_hash": V1}
    files = [{"path": "Show/ep1.mkv", "size": 10}, {"path": "Show/ep1.srt", "size": 2}]
    item = {"info_hash": V1, "status": "found", "name": "Show", "files": files, "total_size": 12}
    assert shape(status=S.COMPLETED, result={"items": [item]}) == {
        "task_id": task_id, "status": "completed", "info_hash": V1, "result": "Show", "files": files,
        "total_size": 12}
    failed = shape(status=S.FAILED, result=None, error_code="calibration_unknown", error_params={"hash": V1})
    assert failed == {"task_id": task_id, "status": "failed", "info_hash": V1, "error_code": "calibration_unknown",
                      "error": f"qBittorrent does not know the torrent {V1}, and no magnet link was given to fetch "
                               "its metadata."}
    timed_out = shape(status=S.TIMEOUT, error_code="timeout", error_params={"timeout": 60})
    assert timed_out["status"] == "timeout"
    assert timed_out["error"] == "The task ran longer than its limit of 60 seconds."
    cancelled = shape(status=S.CANCELLED, error_code="", error_params={})
    assert cancelled["status"] == "failed" and cancelled["error"] == "The task was cancelled."
    translated = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    assert translated["error_code"] == "cancelled" and translated["error"] == "任务已被取消。"


def test_it_shows_a_batch_in_seed_004s_shape(connection, alice, client_for):
    client = client_for(alice)
    response = submit(client, {"hashes": [V1, V2]})
    task_id = response.json()["task_id"]
    assert client.get(f"/api/calibrate/status/{task_id}").json()["info_hash"] == [V1, V2]
    items = [{"info_hash": V1, "status": "found", "name": "A"}, {"info_hash": V2, "status": "unknown"}]
    Task.objects.filter(pk=task_id).update(status=S.COMPLETED, result={"items": items})
    assert client.get(f"/api/calibrate/status/{task_id}").json() == {
        "task_id": task_id, "status": "completed", "info_hash": [V1, V2], "result": items}


# --- the connection -----------------------------------------------------------------------------

def test_it_stores_the_password_encrypted_and_never_shows_it(db, admin_client):
    form = {"name": "box", "description": "", "enabled": "on", "url": " http://127.0.0.1:8080/ ",
            "username": "admin", "password": "s3cret-Pass", "verify_tls": "on", "probe_path": ""}
    response = admin_client.post("/admin/torrents/qbittorrentconnection/add/", form)
    assert response.status_code == 302, response.content.decode()[-3000:]
    conn = QbittorrentConnection.objects.get(name="box")
    assert conn.url == "http://127.0.0.1:8080/" and conn.api_base() == "http://127.0.0.1:8080/api/v2/"
    assert "s3cret-Pass" not in conn.password_encrypted and conn.get_password() == "s3cret-Pass"
    page = admin_client.get(f"/admin/torrents/qbittorrentconnection/{conn.pk}/change/").content.decode()
    assert "s3cret-Pass" not in page and conn.password_encrypted not in page
    assert 'type="password"' in page

    # A refused login blocks these credentials until they change.
    conn.login_failed_fingerprint = conn.credentials_fingerprint()
    conn.save()
    assert conn.login_blocked
    admin_client.post(f"/admin/torrents/qbittorrentconnection/{conn.pk}/change/", {**form, "password": ""})
    conn.refresh_from_db()
    assert conn.get_password() == "s3cret-Pass" and conn.login_blocked  # empty: kept
    admin_client.post(f"/admin/torrents/qbittorrentconnection/{conn.pk}/change/", {**form, "password": "new-one"})
    conn.refresh_from_db()
    assert conn.get_password() == "new-one" and not conn.login_blocked
    admin_client.post(f"/admin/torrents/qbittorrentconnection/{conn.pk}/change/",
                      {**form, "password": "", "clear_password": "on"})
    conn.refresh_from_db()
    assert conn.get_password() == "" and not conn.has_password

    for url, fragment in (("ftp://x", "http:// or https://"), ("http://u:p@host", "own fields"),
                          ("http://host/?a=1", "query")):
        page = admin_client.post("/admin/torrents/qbittorrentconnection/add/", {**form, "name": "bad", "url": url})
        assert page.status_code == 200 and fragment in page.content.decode()
    assert not QbittorrentConnection.objects.filter(name="bad").exists()


def test_it_cannot_read_a_password_encrypted_under_another_secret_key(connection, settings):
    from torrents.models import PasswordUnreadable

    settings.SECRET_KEY = "another-key-entirely-" * 3
    with pytest.raises(PasswordUnreadable):
        connection.get_password()
    settings.SECRET_KEY_FALLBACKS = ["x"]
    with pytest.raises(PasswordUnreadable):
        connection.get_password()


def test_it_offers_operators_a_page_form(connection, alice):
    from tasks.forms import TaskForm

    cls = get_processor(TaskKind.CALIBRATION).form_class(alice)
    assert issubclass(cls, TaskForm) and cls.kind == "calibration" and "connection" not in cls().fields
    form = cls({"calibration-hashes": f"{V1}\n{V2}", "calibration-priority": "5"}, prefix="calibration")
    assert form.is_valid(), form.errors
    assert form.to_params() == {"hashes": f"{V1}\n{V2}"}
    QbittorrentConnection.objects.create(name="second", url="http://127.0.0.1:9")
    cls = get_processor(TaskKind.CALIBRATION).form_class(alice)
    assert [c for c, _l in cls().fields["connection"].choices] == ["main", "second"]
    assert cls().field_for("hashes.3") == "hashes"


class _Unanswering:
    """A qBittorrent client whose every call ends in `error`: where RQ's job timeout or a refusal
    happens to arrive while the run removes its probes."""

    def __init__(self, error):
        self.error = error

    def torrents(self, ids=None):
        raise self.error

    def delete(self, hashes, delete_files=False):
        raise self.error


@pytest.mark.parametrize("swallowed", [True, False])
def test_probe_removal_survives_qbittorrent_errors_but_never_a_job_timeout(tmp_path, swallowed):
    from rq.timeouts import JobTimeoutException

    from torrents.calibrate import CalibrationRun, Pending, ProbeLog
    from torrents.qbittorrent import QbtError

    error = QbtError("HTTP 500") if swallowed else JobTimeoutException("Task exceeded maximum timeout value")
    ref = parse_ref(V1)
    run = CalibrationRun(client=_Unanswering(error), connection=None, refs=[ref], deadline=0, progress=None,
                         probe_log=ProbeLog(str(tmp_path / "probes.json")), run_id="t")
    run.probes.append(Pending(0, ref))
    run._log_probes()
    if swallowed:
        run._remove_probes()  # logged, left for the cleanup to retry
        assert run.probe_log.read() == ref_hashes(ref)
    else:
        with pytest.raises(JobTimeoutException):
            run._remove_probes()
