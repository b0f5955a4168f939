"""Calibration against a real qbittorrent-nox (skipped, loudly, without the binary): torrents made
from generated files, found by v1, v2 and hybrid hashes; magnet links resolved for real through a
second qbittorrent-nox that seeds them (x.pe peer hint); timeouts, single and in a batch; probes
removed afterwards while the torrents already there and their data stay; refused logins and an
unreachable qBittorrent as retryable failures; cancel and cleanup. Nothing leaves 127.0.0.1."""

import json
import os
import uuid
from pathlib import Path

import pytest

from tasks.errors import TaskError
from tasks.messages import ERRORS, render
from tasks.models import Task, TaskKind
from tasks.processors import get_processor
from tasks.runtime import task_work_dir
from tests.conftest import wait_for
from tests.qbt_support import PASSWORD, QBT_BINARY, SKIP_REASON, USERNAME, QbtInstance, free_port, make_torrent
from torrents.calibrate import PROBE_FOLDER, ProbeLog
from torrents.models import QbittorrentConnection
from torrents.qbittorrent import QbtClient

S = Task.Status
PROCESSOR = get_processor(TaskKind.CALIBRATION)
NO_PEERS = "magnet:?xt=urn:btih:{}&dn=nobody-has-this"


def files_of(name, count=3):
    """Generated content: a few files of different sizes, one in a sub-folder with a Chinese name."""
    data = {
        "episode 01.mkv": os.urandom(150_000),
        "字幕/episode 01.zh.srt": ("第一集 " * 300).encode(),
        "info.nfo": f"<title>{name}</title>".encode(),
    }
    return dict(list(data.items())[:count])


@pytest.fixture(scope="session")
def qbt_pair(tmp_path_factory):
    """Two qbittorrent-nox: `main`, the one calibration talks to, and `seeder`, a peer that
    seeds the torrents main does not have."""
    if QBT_BINARY is None:
        pytest.skip(SKIP_REASON)
    root = tmp_path_factory.mktemp("qbt")
    main, seeder = QbtInstance(root / "main"), QbtInstance(root / "seeder")
    try:
        main.start()
        seeder.start()
        yield main, seeder
    finally:
        main.stop()
        seeder.stop()


@pytest.fixture(scope="session")
def swarm(qbt_pair, tmp_path_factory):
    """Torrents only the seeder has: a v1 one and a hybrid (v1 + v2) one."""
    _main, seeder = qbt_pair
    data = tmp_path_factory.mktemp("seeded")
    torrents = {version: make_torrent(data, f"Seeded {version}", files_of(version), version=version)
                for version in ("v1", "hybrid")}
    for torrent in torrents.values():
        seeder.add_torrent(torrent, data)
    return torrents


@pytest.fixture
def qbt(qbt_pair):
    main, _seeder = qbt_pair
    main.delete_all()
    yield main
    main.delete_all()


@pytest.fixture
def peer(qbt_pair):
    return f"127.0.0.1:{qbt_pair[1].session_port}"


def make_connection(url, password=PASSWORD, username=USERNAME, name="main"):
    conn = QbittorrentConnection(name=name, url=url, username=username)
    conn.set_password(password)
    conn.save()
    return conn


@pytest.fixture
def connection(qbt, db):
    return make_connection(qbt.url)


def library(qbt, root, name, version="v1", count=3):
    """A torrent main already has, with its data: seeding from root."""
    torrent = make_torrent(root, name, files_of(name, count), version=version)
    qbt.add_torrent(torrent, root)
    return torrent


def snapshot(root, name):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in Path(root, name).rglob("*") if p.is_file()}


def probe_files(qbt):
    folder = qbt.save_path / PROBE_FOLDER
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


class RunContext:
    """What TaskContext gives a processor, for running it in this process."""

    def __init__(self, params, timeout, work_dir):
        self.task_id = str(uuid.uuid4())
        self.params = params
        self.timeout = timeout
        self.work_dir = Path(work_dir) / self.task_id
        self.output_dir = self.work_dir / "output"
        self.updates = []

    def progress(self, percent=None, *, stage=None, code=None, params=None, stats=None):
        self.updates.append({"percent": percent, "stage": stage, "code": code, "params": params, "stats": stats})


def run_direct(user, params, tmp_path, timeout=10):
    cleaned = PROCESSOR.validate(params=params, files=[], user=user)
    ctx = RunContext(cleaned, timeout, tmp_path / "work")
    return ctx, (lambda: PROCESSOR.run(ctx))


def login_failures(qbt):
    log = qbt.profile / "qBittorrent" / "data" / "logs" / "qbittorrent.log"
    return log.read_text(errors="replace").count("WebAPI login failure")


def wait_status(task_id, statuses, timeout=30):
    wait_for(lambda: Task.objects.get(pk=task_id).status in statuses, timeout, message=f"{task_id} in {statuses}")
    return Task.objects.get(pk=task_id)


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


# --- found where qBittorrent has them -------------------------------------------------------------

def test_it_calibrates_torrents_qbittorrent_has_by_v1_v2_and_hybrid_hashes(connection, qbt, alice, tmp_path):
    data = tmp_path / "data"
    v1 = library(qbt, data, "Show v1")
    v2 = library(qbt, data, "Show v2", version="v2")
    hybrid = library(qbt, data, "Show hybrid", version="hybrid", count=2)
    before = {name: snapshot(data, name) for name in ("Show v1", "Show v2", "Show hybrid")}
    states = {t["hash"]: t["state"] for t in qbt.torrents()}

    # The hybrid by its v1 hash, by its v2 hash and by the id qBittorrent shows (the truncated v2).
    entries = [v1.v1, v2.v2.upper(), hybrid.v1, hybrid.v2, hybrid.id]
    ctx, run = run_direct(alice, {"hashes": entries}, tmp_path)
    result = run()

    items = result["items"]
    assert [i["status"] for i in items] == ["found"] * 5 and result["counts"]["found"] == 5
    assert [i["source"] for i in items] == ["existing"] * 5
    assert [i["name"] for i in items] == ["Show v1", "Show v2", "Show hybrid", "Show hybrid", "Show hybrid"]
    assert items[0]["files"] == [
        {"path": "Show v1/episode 01.mkv", "size": 150_000},
        {"path": "Show v1/info.nfo", "size": len("<title>Show v1</title>")},
        {"path": "Show v1/字幕/episode 01.zh.srt", "size": len(("第一集 " * 300).encode())},
    ]
    assert items[0]["total_size"] == sum(f["size"] for f in items[0]["files"]) and items[0]["file_count"] == 3
    assert [f["path"] for f in items[2]["files"]] == ["Show hybrid/episode 01.mkv", "Show hybrid/字幕/episode 01.zh.srt"]
    assert items[1]["info_hash"] == v2.v2 and items[2]["info_hash"] == hybrid.v1 and items[2]["info_hash_v2"] is None
    assert result["connection"] == "main"

    # Only read: every torrent and every byte of its data is still there, as it was.
    assert {t["hash"]: t["state"] for t in qbt.torrents()} == states
    assert {name: snapshot(data, name) for name in before} == before
    assert ctx.updates[0]["stage"] == "qbt_connecting" and ctx.updates[-1]["stage"] == "done"
    assert ctx.updates[-1]["stats"] == {"total": 5, "found": 5, "unknown": 0, "timeout": 0, "no_metadata": 0,
                                        "refused": 0}


def test_it_ends_a_single_entry_as_seed_004_expects(connection, qbt, alice, tmp_path):
    unknown = "d" * 40
    ctx, run = run_direct(alice, {"hashes": [unknown]}, tmp_path)
    with pytest.raises(TaskError) as err:
        run()
    assert err.value.code == "calibration_unknown" and not err.value.retryable
    assert render(ERRORS, err.value.code, err.value.params) == (
        f"qBittorrent does not know the torrent {unknown}, and no magnet link was given to fetch its metadata.")

    stopped = "e" * 40
    assert qbt.post("torrents/add", urls=NO_PEERS.format(stopped), paused="true", stopped="true") == "Ok."
    wait_for(lambda: qbt.torrent(stopped), 5, message="the stopped magnet")
    ctx, run = run_direct(alice, {"hashes": [stopped]}, tmp_path)
    with pytest.raises(TaskError) as err:
        run()
    assert err.value.code == "calibration_no_metadata"
    assert qbt.torrent(stopped) is not None  # someone else's torrent: never removed


# --- fetched through magnet links -------------------------------------------------------------------

def test_it_calibrates_a_batch_with_mixed_results_and_removes_only_its_probes(
        workers, connection, qbt, swarm, peer, alice, client_for, tmp_path):
    data = tmp_path / "data"
    owned = library(qbt, data, "My library")
    before = snapshot(data, "My library")
    # Someone's magnet that is still fetching metadata, and one that is stopped without it.
    fetching, stopped = "1" * 40, "2" * 40
    assert qbt.post("torrents/add", urls=NO_PEERS.format(fetching), paused="false", stopped="false") == "Ok."
    assert qbt.post("torrents/add", urls=NO_PEERS.format(stopped), paused="true", stopped="true") == "Ok."
    # qBittorrent adds torrents asynchronously: a busy machine lists them a moment later.
    kept = wait_for(lambda: (found := {t["hash"] for t in qbt.torrents()}) == {owned.id, fetching, stopped} and found,
                    10, message="the two magnets to be listed")
    workers(1)

    v1, hybrid = swarm["v1"], swarm["hybrid"]
    nobody = "3" * 40
    entries = [
        owned.v1,                                                  # found where it is
        v1.magnet(peer),                                           # fetched from the seeder
        f"magnet:?xt=urn:btih:{hybrid.v1}&x.pe={peer}",            # v1 magnet of a hybrid: changes id
        "4" * 40,                                                  # unknown, no magnet
        NO_PEERS.format(nobody),                                   # nobody has it: times out
        fetching,                                                  # someone's: waited for, kept
        stopped,                                                   # stopped without metadata
    ]
    response = post(client_for(alice), "/api/tasks/", {"kind": "calibration", "params": {"hashes": entries},
                                                       "timeout": 6})
    assert response.status_code == 201, response.content
    task = wait_status(response.json()["task_id"], Task.TERMINAL, timeout=40)
    assert task.status == S.COMPLETED, (task.error_code, task.error_detail)

    items = task.result["items"]
    assert [i["status"] for i in items] == ["found", "found", "found", "unknown", "timeout", "timeout", "no_metadata"]
    assert [i.get("source") for i in items[:3]] == ["existing", "metadata", "metadata"]
    assert [i["name"] for i in items[:3]] == ["My library", "Seeded v1", "Seeded hybrid"]
    expected = {"Seeded v1/episode 01.mkv": 150_000, "Seeded v1/info.nfo": len("<title>v1</title>"),
                "Seeded v1/字幕/episode 01.zh.srt": len(("第一集 " * 300).encode())}
    assert {f["path"]: f["size"] for f in items[1]["files"]} == expected
    assert items[2]["info_hash"] == hybrid.v1 and items[2]["torrent_id"] == hybrid.id
    assert items[4]["info_hash"] == nobody and items[4]["magnet_name"] == "nobody-has-this"
    assert task.result["counts"] == {"found": 3, "unknown": 1, "timeout": 2, "no_metadata": 1, "refused": 0}
    assert task.stats["found"] == 3 and task.stats["total"] == 7

    # The probes are gone, with whatever they wrote; what was there before stays, data included.
    assert {t["hash"] for t in qbt.torrents()} == kept
    assert snapshot(data, "My library") == before
    assert probe_files(qbt) == []
    assert not (task_work_dir(task.pk) / "calibration-probes.json").exists()

    body = client_for(alice).get(f"/api/calibrate/status/{task.pk}").json()
    assert body["status"] == "completed" and body["info_hash"][:2] == [owned.v1, v1.v1] and len(body["result"]) == 7


def test_it_calibrates_a_magnet_through_seed_004s_endpoints(workers, connection, qbt, swarm, peer, alice, client_for):
    workers(1)
    client = client_for(alice)
    torrent = swarm["hybrid"]
    response = post(client, "/api/calibrate/async", {"info_hash": torrent.magnet(peer), "timeout": 20})
    assert response.status_code == 200 and response.json()["status"] == "pending"
    task_id = response.json()["task_id"]
    url = f"/api/calibrate/status/{task_id}"
    wait_for(lambda: client.get(url).json()["status"] not in ("pending", "running"), 30, message="calibration")
    body = client.get(url).json()
    assert body == {
        "task_id": task_id, "status": "completed", "info_hash": torrent.v1, "result": "Seeded hybrid",
        "files": [{"path": "Seeded hybrid/episode 01.mkv", "size": 150_000},
                  {"path": "Seeded hybrid/info.nfo", "size": len("<title>hybrid</title>")},
                  {"path": "Seeded hybrid/字幕/episode 01.zh.srt", "size": len(("第一集 " * 300).encode())}],
        "total_size": 150_000 + len("<title>hybrid</title>") + len(("第一集 " * 300).encode()),
    }
    assert qbt.torrents() == [] and probe_files(qbt) == []


def test_it_times_out_a_single_magnet_nobody_has(workers, connection, qbt, alice, client_for):
    workers(1)
    client = client_for(alice)
    nobody = "5" * 40
    response = post(client, "/api/calibrate/async", {"info_hash": NO_PEERS.format(nobody), "timeout": 3})
    task_id = response.json()["task_id"]
    task = wait_status(task_id, Task.TERMINAL, timeout=30)
    assert task.status == S.TIMEOUT and task.error_code == "timeout"
    assert client.get(f"/api/calibrate/status/{task_id}").json() == {
        "task_id": task_id, "status": "timeout", "info_hash": nobody, "error_code": "timeout",
        "error": "The task ran longer than its limit of 3 seconds."}
    assert qbt.torrents() == []
    assert task.finished_at and (task.finished_at - task.started_at).total_seconds() < 10


def test_it_removes_its_probe_when_cancelled(workers, connection, qbt, alice, client_for):
    workers(1)
    client = client_for(alice)
    nobody = "6" * 40
    response = post(client, "/api/calibrate/async", {"info_hash": NO_PEERS.format(nobody), "timeout": 60})
    task_id = response.json()["task_id"]
    wait_for(lambda: qbt.torrent(nobody), 20, message="the probe")
    assert qbt.torrent(nobody)["save_path"].rstrip("/") == str(qbt.save_path / PROBE_FOLDER / task_id)
    assert client.post(f"/api/tasks/{task_id}/cancel/").status_code == 200
    task = wait_status(task_id, Task.TERMINAL)
    assert task.status == S.CANCELLED
    assert qbt.torrents() == []
    assert client.get(f"/api/calibrate/status/{task_id}").json()["status"] == "failed"


def test_it_cleans_up_only_probes_a_killed_run_left(connection, qbt, tmp_path):
    data = tmp_path / "data"
    owned = library(qbt, data, "Kept")
    before = snapshot(data, "Kept")
    nobody = "7" * 40
    ctx = RunContext({"connection": connection.pk, "hashes": [owned.v1, NO_PEERS.format(nobody)]}, 10, tmp_path)
    with QbtClient(qbt.url, USERNAME, PASSWORD) as client:
        client.login()
        assert client.add_probe(NO_PEERS.format(nobody), str(qbt.save_path / PROBE_FOLDER / ctx.task_id))
    probe_log = ProbeLog(str(ctx.work_dir / "calibration-probes.json"))
    probe_log.write({owned.v1, nobody})  # even if the log names it, a torrent outside the probe folder stays
    PROCESSOR.cleanup(ctx)
    assert {t["hash"] for t in qbt.torrents()} == {owned.id}
    assert snapshot(data, "Kept") == before
    assert probe_log.read() == set()

    # A retry removes what the earlier attempt left before it starts.
    with QbtClient(qbt.url, USERNAME, PASSWORD) as client:
        client.login()
        assert client.add_probe(NO_PEERS.format(nobody), str(qbt.save_path / PROBE_FOLDER / ctx.task_id))
    probe_log.write({nobody})
    ctx.params = {"connection": connection.pk, "hashes": [owned.v1]}
    assert PROCESSOR.run(ctx)["items"][0]["status"] == "found"
    assert {t["hash"] for t in qbt.torrents()} == {owned.id} and probe_log.read() == set()


# --- failures ------------------------------------------------------------------------------------

def test_it_fails_retryably_on_refused_logins_without_trying_them_again(qbt, db, alice, tmp_path):
    connection = make_connection(qbt.url, password="wrong-password")
    failures = login_failures(qbt)
    ctx, run = run_direct(alice, {"hashes": ["8" * 40]}, tmp_path)
    with pytest.raises(TaskError) as err:
        run()
    assert err.value.code == "qbt_login_failed" and err.value.retryable
    assert render(ERRORS, err.value.code, err.value.params).startswith(
        "qBittorrent (main) refused the username or password")
    wait_for(lambda: login_failures(qbt) == failures + 1, 5, message="qBittorrent to log the failure")
    connection.refresh_from_db()
    assert connection.login_blocked and connection.login_failed_at

    # Not tried again while the credentials are the same (qBittorrent bans an address after a few).
    with pytest.raises(TaskError) as err:
        run()
    assert err.value.code == "qbt_login_failed" and err.value.retryable and "not tried again" in err.value.detail
    assert login_failures(qbt) == failures + 1

    connection.set_password(PASSWORD)
    connection.save()
    with pytest.raises(TaskError) as err:
        run()
    assert err.value.code == "calibration_unknown"
    connection.refresh_from_db()
    assert not connection.login_blocked and connection.login_failed_at is None


def test_it_fails_retryably_when_qbittorrent_is_unreachable_or_not_qbittorrent(qbt, db, alice, tmp_path):
    make_connection(f"http://127.0.0.1:{free_port()}")
    ctx, run = run_direct(alice, {"hashes": ["9" * 40]}, tmp_path)
    with pytest.raises(TaskError) as err:
        run()
    assert err.value.code == "qbt_unreachable" and err.value.retryable
    assert render(ERRORS, err.value.code, err.value.params) == (
        "qBittorrent (main) could not be reached: Connection refused")

    QbittorrentConnection.objects.update(url=qbt.url, username="")  # qBittorrent wants a login
    with pytest.raises(TaskError) as err:
        run()
    assert err.value.code == "qbt_login_failed" and err.value.retryable and err.value.params["reason"] == (
        "qBittorrent requires a login")

    QbittorrentConnection.objects.update(url=qbt.url + "/not-the-web-ui", username=USERNAME)
    with pytest.raises(TaskError) as err:
        run()
    assert err.value.code == "qbt_api_error" and err.value.retryable
    assert render(ERRORS, err.value.code, err.value.params) == (
        "qBittorrent (main) answered auth/login unexpectedly: HTTP 404")


def test_it_tests_a_connection_from_the_admin(qbt, db, admin_client):
    good = make_connection(qbt.url, name="good")
    bad = make_connection(qbt.url, password="nope", name="bad")
    response = admin_client.post("/admin/torrents/qbittorrentconnection/",
                                 {"action": "test_connection", "_selected_action": [good.pk, bad.pk]}, follow=True)
    text = response.content.decode()
    assert "Good: qBittorrent v4." in text and "(Web API 2." in text and str(qbt.save_path) in text
    assert "qBittorrent (bad) refused the username or password" in text and "Fails." in text
    bad.refresh_from_db()
    good.refresh_from_db()
    assert bad.login_blocked and not good.login_blocked


def test_it_retries_a_calibration_whose_qbittorrent_is_down(workers, db, alice, client_for, qbt):
    make_connection(f"http://127.0.0.1:{free_port()}")
    workers(1)
    client = client_for(alice)
    task_id = post(client, "/api/calibrate/async", {"info_hash": "a" * 40}).json()["task_id"]
    task = wait_status(task_id, [S.RETRYING, *Task.TERMINAL])
    assert task.status == S.RETRYING and task.attempts == 1 and task.max_attempts == 3
    body = client.get(f"/api/tasks/{task_id}/").json()
    assert body["error"]["code"] == "qbt_unreachable"
    assert body["error"]["message"] == "qBittorrent (main) could not be reached: Connection refused"
    assert client.get(f"/api/calibrate/status/{task_id}").json()["status"] == "pending"


def test_a_probe_folder_set_to_the_real_downloads_never_costs_their_data(connection, qbt, tmp_path):
    """An operator points the probe folder at the download folder itself, and a killed run's log
    names a torrent that lives there (its probe was refused as a duplicate): the cleanup removes
    only what sits in the run's own subfolder, so the real torrent and its files stay."""
    data = tmp_path / "data"
    owned = library(qbt, data, "Real")
    before = snapshot(data, "Real")
    type(connection).objects.filter(pk=connection.pk).update(probe_path=str(data))
    ctx = RunContext({"connection": connection.pk, "hashes": [owned.v1]}, 10, tmp_path)
    probe_log = ProbeLog(str(ctx.work_dir / "calibration-probes.json"))
    probe_log.write({owned.v1})
    PROCESSOR.cleanup(ctx)
    assert {t["hash"] for t in qbt.torrents()} == {owned.id}
    assert snapshot(data, "Real") == before
