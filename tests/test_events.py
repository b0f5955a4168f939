"""/ws/tasks/ on the real ASGI app: a viewer gets their own task events, live and translated,
and nobody else's."""

import asyncio
import json
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from mediacraft.asgi import application
from tasks import services
from tests.conftest import submit_command

HAS_ZH = (Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.mo").exists()


def headers_for(user, origin=b"http://localhost", language=None):
    """Built outside the event loop: logging in touches the database synchronously."""
    headers = [(b"origin", origin), (b"host", b"localhost")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    if language:
        headers.append((b"accept-language", language.encode()))
    return headers


def socket_for(headers):
    return WebsocketCommunicator(application, "/ws/tasks/", headers=headers)


async def collect(comm, until, timeout=20.0):
    """Receive task events until `until(event)` is true; return them all."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = await comm.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        seen.append(msg)
        if until(msg):
            return seen
    raise AssertionError(f"condition not met; got {json.dumps(seen)[:2000]}")


async def connect(comm):
    connected, _ = await comm.connect(timeout=5)
    assert connected
    hello = await comm.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    return hello


def test_it_streams_live_progress_of_my_task_and_nothing_to_others(workers, alice, bob, tool):
    workers(1)
    alice_h, bob_h = headers_for(alice), headers_for(bob)

    async def scenario():
        mine, theirs = socket_for(alice_h), socket_for(bob_h)
        assert (await connect(mine))["authenticated"] is True
        await connect(theirs)
        task = await asyncio.to_thread(submit_command, alice, steps=6, sleep=0.25)
        events = await collect(mine, lambda m: m.get("task", {}).get("status") == "completed")
        assert await theirs.receive_nothing(timeout=0.5)
        await mine.disconnect()
        await theirs.disconnect()
        return task, events

    task, events = async_to_sync(scenario)()
    tasks = [e["task"] for e in events if e["type"] == "task"]
    assert all(t["task_id"] == str(task.pk) for t in tasks)
    statuses = [t["status"] for t in tasks]
    assert statuses[0] in ("pending", "queued") and statuses[-1] == "completed"
    assert "running" in statuses
    progress = [t["progress"] for t in tasks if t["status"] == "running"]
    assert any(0 < p < 100 for p in progress), progress
    assert progress == sorted(progress)
    running = [t for t in tasks if t["status"] == "running" and t["message"]]
    assert any(t["message"].startswith("step ") for t in running)
    # Same fields as the task API.
    assert {"task_id", "kind", "status", "progress", "message", "stats", "error", "outputs"} <= set(tasks[-1])
    assert "owner_id" not in tasks[-1] and "message_code" not in tasks[-1]


def test_it_sends_status_changes_made_through_the_api(transactional_db, redis_conn, alice, tool):
    headers = headers_for(alice)

    async def scenario():
        comm = socket_for(headers)
        await connect(comm)
        task = await asyncio.to_thread(submit_command, alice, steps=1)
        await collect(comm, lambda m: m.get("task", {}).get("status") == "queued")
        await asyncio.to_thread(services.task_cancel, task=task)
        events = await collect(comm, lambda m: m.get("task", {}).get("status") == "cancelled")
        await comm.disconnect()
        return events

    assert async_to_sync(scenario)()[-1]["task"]["status_label"] == "Cancelled"


def test_it_accepts_an_anonymous_socket_but_sends_it_nothing(transactional_db, redis_conn, alice, tool):
    headers = headers_for(None)

    async def scenario():
        comm = socket_for(headers)
        hello = await connect(comm)
        await asyncio.to_thread(submit_command, alice, steps=1)
        quiet = await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()
        return hello, quiet

    hello, quiet = async_to_sync(scenario)()
    assert hello["authenticated"] is False and quiet


def test_it_keeps_an_idle_socket_open(transactional_db, redis_conn, alice):
    headers = headers_for(alice)

    async def scenario():
        comm = socket_for(headers)
        await connect(comm)
        quiet = await comm.receive_nothing(timeout=7)  # longer than the channel layer's 5 s wait for a message
        await comm.send_json_to({"type": "ping"})
        pong = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return quiet, pong

    quiet, pong = async_to_sync(scenario)()
    assert quiet and pong == {"type": "pong"}


def session_headers(client):
    return [(b"origin", b"http://localhost"), (b"host", b"localhost"),
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


def logged_in_client(username, password):
    client = Client()
    response = client.post("/api/account/login/", {"username": username, "password": password},
                           content_type="application/json")
    assert response.status_code == 200, response.content
    return client


def test_it_closes_the_sockets_of_a_session_that_logs_out(transactional_db, redis_conn, alice, tool):
    tab, elsewhere = logged_in_client("alice", "alice-pass-123!"), logged_in_client("alice", "alice-pass-123!")
    tab_h, elsewhere_h = session_headers(tab), session_headers(elsewhere)

    async def scenario():
        mine, other = socket_for(tab_h), socket_for(elsewhere_h)
        assert (await connect(mine))["authenticated"] is True
        await connect(other)
        response = await asyncio.to_thread(tab.post, "/api/account/logout/")
        assert response.status_code == 204
        closed = await mine.receive_output(timeout=5)
        await asyncio.to_thread(submit_command, alice, steps=1)
        still_open = await collect(other, lambda m: m.get("type") == "task")  # another browser keeps its socket
        await other.disconnect()
        return closed, still_open

    closed, still_open = async_to_sync(scenario)()
    assert closed["type"] == "websocket.close"
    assert still_open[-1]["task"]["status"] in ("pending", "queued")


def test_it_closes_a_visitors_sockets_when_it_logs_in_so_they_reconnect_as_the_account(transactional_db, redis_conn,
                                                                                      alice, tool):
    visitor = Client()
    assert visitor.post("/api/tasks/cancel-all/").status_code == 200
    headers = session_headers(visitor)

    async def scenario():
        comm = socket_for(headers)
        await connect(comm)
        response = await asyncio.to_thread(visitor.post, "/api/account/login/",
                                           {"username": "alice", "password": "alice-pass-123!"},
                                           content_type="application/json")
        assert response.status_code == 200
        return await comm.receive_output(timeout=5)

    assert async_to_sync(scenario)()["type"] == "websocket.close"


@pytest.mark.skipif(not HAS_ZH, reason="no compiled zh_Hans catalogue (locale/zh_Hans/LC_MESSAGES/django.mo)")
def test_it_translates_events_into_the_viewers_language(transactional_db, redis_conn, alice, tool):
    zh_h, en_h = headers_for(alice, language="zh-CN,zh;q=0.9"), headers_for(alice, language="en-US")

    async def scenario():
        zh, en = socket_for(zh_h), socket_for(en_h)
        assert (await connect(zh))["language"] == "zh-hans"
        await connect(en)
        task = await asyncio.to_thread(submit_command, alice, steps=1)
        await asyncio.to_thread(services.task_cancel, task=task)
        got_zh = await collect(zh, lambda m: m.get("task", {}).get("status") == "cancelled")
        got_en = await collect(en, lambda m: m.get("task", {}).get("status") == "cancelled")
        await zh.disconnect()
        await en.disconnect()
        return got_zh[-1]["task"], got_en[-1]["task"]

    zh, en = async_to_sync(scenario)()
    assert en["status_label"] == "Cancelled"
    assert zh["status_label"] == "已取消"


def test_it_delivers_each_event_to_every_socket_of_the_owner_in_order(transactional_db, redis_conn, alice, tool):
    """events.group_send speaks channels_redis's protocol itself: two sockets of one user (two
    tabs, on different channel keys) get every event once, in the order it was sent."""
    from tasks.events import group_send, user_group

    headers = headers_for(alice)
    sent = [{"task_id": f"t{i}", "owner_id": alice.pk} for i in range(30)]

    async def scenario():
        tabs = [socket_for(headers), socket_for(headers)]
        for tab in tabs:
            await connect(tab)
        for snap in sent:
            await asyncio.to_thread(group_send, user_group(alice.pk), {"type": "task.deleted", "task_id": snap["task_id"]})
        got = []
        for tab in tabs:
            got.append([m["task_id"] for m in await collect(tab, lambda m: m.get("task_id") == "t29")])
            assert await tab.receive_nothing(timeout=0.3)  # nothing twice
            await tab.disconnect()
        return got

    for received in async_to_sync(scenario)():
        assert received == [snap["task_id"] for snap in sent]


def test_it_drops_events_for_a_socket_over_capacity_without_failing_the_sender(transactional_db, redis_conn, alice,
                                                                                 caplog, settings):
    """A socket that reads nothing fills its channel up to the layer's capacity; later events to it
    are dropped (and logged), the sender goes on."""
    from channels.layers import get_channel_layer

    from tasks.events import group_send, user_group

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(alice.pk), channel)
    with caplog.at_level("INFO", logger="tasks.events"):
        for i in range(layer.capacity + 5):
            group_send(user_group(alice.pk), {"type": "task.deleted", "task_id": str(i)})
    assert "1 of 1 channels over capacity" in caplog.text

    async def drain():
        return [(await layer.receive(channel))["task_id"] for _ in range(layer.capacity)]

    assert async_to_sync(drain)() == [str(i) for i in range(layer.capacity)]


def test_it_builds_a_tasks_event_only_when_someone_watches(transactional_db, redis_conn, alice, tool,
                                                           django_assert_num_queries):
    """Mostly nobody watches (a visitor submits and closes the page): the snapshot and its files
    query are made only for a group with a socket in it."""
    from channels.layers import get_channel_layer

    from tasks.events import broadcast, user_group
    from tasks.models import Task

    task = Task.objects.get(pk=submit_command(alice, steps=1).pk)
    with django_assert_num_queries(0):
        assert broadcast(task) is True
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(alice.pk), channel)
    with django_assert_num_queries(1):  # the task's files
        assert broadcast(task) is True
    event = async_to_sync(layer.receive)(channel)
    assert event["type"] == "task.event" and event["task"]["task_id"] == str(task.pk)
    assert event["task"]["status"] == Task.Status.QUEUED and event["task"]["inputs"] == []
