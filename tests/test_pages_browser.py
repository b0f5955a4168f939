"""The pages in a real Chromium against a real daphne, real RQ workers, the test database and
test Redis: submit through the form, watch progress move live, cancel, new tasks appearing,
reconnection with polling, uploads with progress and cancel, language, 404s, notifications,
phone and desktop layouts."""

import re
import time

import pytest
from django.utils import timezone

from tasks.models import CommandTemplate, Task
from tests.browser import *  # noqa: F401,F403
from tests.browser import DESKTOP, PHONE
from tests.conftest import FAKE_TOOL, wait_for

S = Task.Status


@pytest.fixture
def slow_tool(transactional_db):
    """An open template running the fake tool: `steps` progress lines, `sleep` seconds apart."""
    CommandTemplate.objects.filter(name="countdown").delete()
    return CommandTemplate.objects.create(
        name="slow", description="Reports progress step by step.", allow_everyone=True,
        argv=["{python}", FAKE_TOOL, "--steps", "{steps}", "--sleep", "{sleep}"],
        param_schema=[{"name": "steps", "type": "integer", "default": 5, "min": 1, "max": 1000},
                      {"name": "sleep", "type": "number", "default": 0.05, "min": 0, "max": 5}],
        default_timeout=120,
    )


def submit_form(page, base, steps, sleep):
    page.goto(f"{base}/new/command/")
    page.get_by_label("Steps").fill(str(steps))
    page.get_by_label("Sleep").fill(str(sleep))
    page.get_by_role("button", name="Start task").click()
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}/$"))
    return page.url.rstrip("/").rsplit("/", 1)[1]


def progress_of(page, selector='[data-task-detail] progress[data-f="progress"]'):
    return float(page.locator(selector).evaluate("el => el.value"))


def mark_document(page):
    """A marker that a reload would wipe: proves updates arrive without reloading."""
    page.evaluate("window.__noReload = true")


def assert_not_reloaded(page):
    assert page.evaluate("window.__noReload === true")


def test_it_submits_through_the_form_shows_progress_live_and_cancels(server, workers, slow_tool, new_page):
    workers(1)
    page = new_page()
    task_id = submit_form(page, server.url, steps=200, sleep=0.1)
    assert page.get_by_text("Task created.").is_visible()
    assert "created" not in page.url  # the confirmation does not come back on reload
    mark_document(page)
    indicator = page.locator("[data-live-indicator]")
    wait_for(lambda: indicator.get_attribute("data-state") == "live", 10, message="live indicator")
    assert indicator.inner_text().strip() == "Live"
    wait_for(lambda: progress_of(page) > 0, 20, message="progress above 0")
    first = progress_of(page)
    wait_for(lambda: progress_of(page) >= first + 2, 20, message="progress moving")
    assert page.locator('[data-task-detail] [data-f="status_label"]').inner_text() == "Running"
    percent = page.locator('[data-task-detail] [data-f="percent"]').inner_text()
    assert re.fullmatch(r"\d+%", percent)
    assert "step" in page.locator('[data-task-detail] [data-f="message"]').inner_text()
    assert_not_reloaded(page)

    page.locator('[data-task-detail] form[data-action="cancel"] button').click()
    dialog = page.locator("[data-confirm-dialog]")
    assert dialog.is_visible()
    dialog.get_by_role("button", name="Yes, go ahead").click()
    badge = page.locator('[data-task-detail] [data-f="status_label"]').first
    wait_for(lambda: badge.inner_text() == "Cancelled", 20, message="cancelled badge")
    assert page.locator('[data-task-detail] form[data-action="retry"]').is_visible()
    assert page.locator('[data-task-detail] form[data-action="delete"]').is_visible()
    assert not page.locator('[data-task-detail] form[data-action="cancel"]').is_visible()
    assert Task.objects.get(pk=task_id).status == S.CANCELLED
    timeline = page.locator('[data-f="timeline"] .timeline__label').all_inner_texts()
    assert timeline[:3] == ["Pending", "Queued", "Running"] and timeline[-1] == "Cancelled"
    assert_not_reloaded(page)


def test_it_adds_tasks_from_another_tab_and_the_api_to_the_list_live(server, workers, slow_tool, new_page):
    workers(1)
    tab = new_page()
    first_id = submit_form(tab, server.url, steps=3, sleep=0.01)
    listing = new_page(tab.context)
    listing.goto(f"{server.url}/tasks/")
    mark_document(listing)
    wait_for(lambda: listing.locator("[data-live-indicator]").get_attribute("data-state") == "live", 10,
             message="live")
    second_id = submit_form(tab, server.url, steps=40, sleep=0.1)
    row = listing.locator(f'[data-task-id="{second_id}"]')
    row.wait_for()
    wait_for(lambda: float(row.locator("progress").evaluate("el => el.value")) > 0, 20, message="row progress")
    wait_for(lambda: row.locator('[data-f="status_label"]').inner_text() == "Completed", 30, message="completed")
    assert row.locator('[data-f="percent"]').inner_text() == "100%"
    assert row.locator('form[data-action="delete"]').is_visible()

    created = tab.evaluate("""async () => {
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        const response = await fetch('/api/tasks/', {method: 'POST', headers: {'Content-Type': 'application/json',
            'X-CSRFToken': csrf}, body: JSON.stringify({kind: 'command', title: 'from the API',
            params: {template: 'slow', args: {steps: 2}}})});
        return (await response.json()).task_id;
    }""")
    api_row = listing.locator(f'[data-task-id="{created}"]')
    api_row.wait_for()
    assert api_row.locator('[data-f="display_title"]').inner_text() == "from the API"
    ids = listing.locator("[data-task-list] > [data-task]").evaluate_all("rows => rows.map(r => r.dataset.taskId)")
    assert ids == [created, second_id, first_id]  # newest first
    assert listing.locator("[data-count]").inner_text() == "3"
    assert_not_reloaded(listing)

    # Deleting from the list removes the row in place (the API call, then the event).
    row.locator('form[data-action="delete"] button').click()
    listing.get_by_role("button", name="Yes, go ahead").click()
    row.wait_for(state="detached")
    assert not Task.objects.filter(pk=second_id).exists()
    assert_not_reloaded(listing)


def test_it_reconnects_with_backoff_and_polls_meanwhile(server, transactional_db, redis_conn, slow_tool, new_page):
    page = new_page()
    sockets, allow = [], {"open": True}

    def route(ws):
        if not allow["open"]:
            ws.close()
            return
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket(re.compile(r"/ws/tasks/$"), route)
    polls = []
    page.on("request", lambda r: "/api/tasks/?" in r.url and polls.append(r.url))
    page.goto(f"{server.url}/tasks/")
    indicator = page.locator("[data-live-indicator]")
    wait_for(lambda: indicator.get_attribute("data-state") == "live", 10, message="live")
    mark_document(page)

    allow["open"] = False
    sockets[-1].close()
    wait_for(lambda: indicator.get_attribute("data-state") == "reconnecting", 10, message="reconnecting")
    assert indicator.inner_text().strip() == "Reconnecting…"
    created = page.evaluate("""async () => {
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        const response = await fetch('/api/tasks/', {method: 'POST', headers: {'Content-Type': 'application/json',
            'X-CSRFToken': csrf}, body: JSON.stringify({kind: 'command', params: {template: 'slow', args: {}}})});
        return (await response.json()).task_id;
    }""")
    page.locator(f'[data-task-id="{created}"]').wait_for(timeout=15000)  # through polling: the socket is down
    assert polls, "no polling while disconnected"
    assert page.locator("[data-empty]").is_hidden()

    allow["open"] = True
    wait_for(lambda: indicator.get_attribute("data-state") == "live", 40, message="live again")
    assert len(sockets) == 2
    count = len(polls)
    time.sleep(5)
    assert len(polls) == count, "still polling although live again"
    assert_not_reloaded(page)
    page.allowed_errors = ["WebSocket"]


def test_it_uploads_with_byte_progress_and_can_cancel(server_with_uploads, transactional_db, redis_conn, new_page,
                                                      tmp_path):
    big, small = tmp_path / "big.bin", tmp_path / "片段 1.txt"
    big.write_bytes(bytes(range(256)) * 4096 * 6)  # 6 MiB
    small.write_text("hello\n")
    page = new_page()
    base = server_with_uploads.url
    page.goto(f"{base}/new/checksum/")
    assert page.get_by_role("heading", name="checksum").is_visible()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": -1,
                                                  "uploadThroughput": 512 * 1024})
    page.get_by_label("Files").set_input_files([str(big)])
    page.get_by_role("button", name="Start task").click()
    bar = page.locator("[data-upload-bar]")
    bar.wait_for()
    wait_for(lambda: 0 < float(bar.evaluate("el => el.value")) < 100, 20, message="upload under way")
    text = page.locator("[data-upload-text]").inner_text()
    assert re.fullmatch(r"Uploading \d+(\.\d)?\u00a0(B|KB|MB) of 6\.0\u00a0MB \(\d+%\)", text), text
    page.get_by_role("button", name="Cancel upload").click()
    page.get_by_text("Upload cancelled. Nothing was submitted.").wait_for()
    assert page.locator("[data-upload-box]").is_hidden()
    assert Task.objects.count() == 0

    # The processor's own error lands on its field; then a real submission with two files.
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": -1})
    page.locator("summary", has_text="More options").click()
    page.get_by_label("Title").fill("two files")
    page.get_by_label("Note").fill("reject")
    page.get_by_label("Files").set_input_files([str(small), str(big)])
    page.get_by_role("button", name="Start task").click()
    error = page.locator("#id_checksum-note_error")
    error.wait_for()
    assert error.inner_text() == "The note was refused."
    assert page.get_by_label("Note").get_attribute("aria-invalid") == "true"
    page.get_by_label("Note").fill("fine")
    page.get_by_role("button", name="Start task").click()
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}/$"))
    assert page.get_by_text("Task created.").is_visible()
    task = Task.objects.get()
    assert task.title == "two files" and task.kind == "checksum"
    assert [(f["name"], f["size"]) for f in task.params["uploads"]] == [("片段 1.txt", 6), ("big.bin", 6 * 1024 * 1024)]
    assert "片段 1.txt" in page.locator(".kv").first.inner_text()
    page.allowed_errors = ["status of 400"]  # the refused note: the API's 400, shown on the field


def api_post(page, base, path, data=None):
    """A script with this browser's cookie (the CSRF cookie is read afresh: a first write rotates it)."""
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.context.request.post(f"{base}{path}", headers={"X-CSRFToken": csrf}, data=data)
    assert response.ok, response.text()
    return response.json()


def test_it_shows_an_anonymous_page_a_task_its_cookie_submits_later(server, transactional_db, redis_conn, slow_tool,
                                                                      new_page):
    page = new_page()
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws))
    page.goto(f"{server.url}/tasks/")
    indicator = page.locator("[data-live-indicator]")
    wait_for(lambda: indicator.get_attribute("data-state") == "live", 10, message="live")
    mark_document(page)
    # A script with this browser's cookie: its first write makes the visitor; this page's socket,
    # opened anonymously, hears nothing of it.
    task_id = api_post(page, server.url, "/api/tasks/", {
        "kind": "command", "title": "from a script", "params": {"template": "slow", "args": {"steps": 2}}})["task_id"]
    row = page.locator(f'[data-task-id="{task_id}"]')
    row.wait_for(timeout=15000)
    assert row.locator('[data-f="display_title"]').inner_text() == "from a script"
    wait_for(lambda: len(sockets) == 2 and indicator.get_attribute("data-state") == "live", 10,
             message="a socket of the new visitor")
    api_post(page, server.url, f"/api/tasks/{task_id}/cancel/")  # arrives over the new socket only
    badge = row.locator('[data-f="status_label"]')
    wait_for(lambda: badge.inner_text() == "Cancelled", 10, message="the cancel, live")
    assert_not_reloaded(page)


def test_it_drops_a_row_that_no_longer_matches_the_filter(server, transactional_db, redis_conn, slow_tool, new_page):
    page = new_page()
    page.goto(f"{server.url}/tasks/")
    first, second, third = [api_post(page, server.url, "/api/tasks/", {
        "kind": "command", "params": {"template": "slow", "args": {"steps": 1}}})["task_id"] for _ in range(3)]
    # No workers and one task at a time per visitor: the first is queued, the others wait.
    assert Task.objects.get(pk=first).status == S.QUEUED
    page.goto(f"{server.url}/tasks/?status=pending")
    wait_for(lambda: page.locator("[data-live-indicator]").get_attribute("data-state") == "live", 10, message="live")
    mark_document(page)
    assert page.locator("[data-count]").inner_text() == "2"
    api_post(page, server.url, f"/api/tasks/{third}/cancel/")
    page.locator(f'[data-task-id="{third}"]').wait_for(state="detached", timeout=10000)
    assert page.locator("[data-count]").inner_text() == "1"
    api_post(page, server.url, f"/api/tasks/{first}/cancel/")  # the second is admitted: queued, no longer pending
    page.locator(f'[data-task-id="{second}"]').wait_for(state="detached", timeout=10000)
    assert Task.objects.get(pk=second).status == S.QUEUED
    assert page.locator("[data-count]").inner_text() == "0"
    assert page.locator("[data-empty]").is_visible()
    assert_not_reloaded(page)


def submit_slow(page, server):
    """A slow command task submitted as the page's visitor; its id."""
    page.goto(f"{server.url}/tasks/")
    return api_post(page, server.url, "/api/tasks/", {
        "kind": "command", "params": {"template": "slow", "args": {"steps": 1}}})["task_id"]


def open_live(page, url):
    """Open the page, wait for its live connection, and mark it to tell a reload later."""
    page.goto(url)
    wait_for(lambda: page.locator("[data-live-indicator]").get_attribute("data-state") == "live", 10, message="live")
    mark_document(page)


def test_it_offers_all_results_as_one_zip_once_a_task_ends_with_several(
        server, transactional_db, redis_conn, slow_tool, new_page):
    from storage import services as storage
    from tasks import services
    from tasks.runtime import task_work_dir

    page = new_page()
    task_id = submit_slow(page, server)
    open_live(page, f"{server.url}/tasks/{task_id}/")
    zip_link = page.get_by_role("link", name="Download all (ZIP)")
    assert not zip_link.is_visible()
    task = services.task_mark_running(task_id=task_id, worker_name="test")
    for name in ("one.txt", "two.txt"):
        path = task_work_dir(task_id) / "output" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        storage.file_register_output(task=task, path=path, name=name)
    services.task_complete(task_id=task_id, result={})
    zip_link.wait_for(state="visible", timeout=10000)
    assert zip_link.get_attribute("href") == f"/api/tasks/{task_id}/outputs.zip"
    assert page.locator('[data-f="outputs"] .file__name').all_inner_texts() == ["one.txt", "two.txt"]
    with page.expect_download() as download:
        zip_link.click()
    assert download.value.suggested_filename.endswith(".zip")
    assert_not_reloaded(page)


CALIBRATED = {"connection": "main", "counts": {"found": 1, "unknown": 1}, "items": [
    {"input": "a" * 40, "info_hash": "a" * 40, "status": "found", "name": "Holiday.Photos.2024",
     "files": [{"path": "Holiday.Photos.2024/001.jpg", "size": 2048}, {"path": "Holiday.Photos.2024/002.jpg",
                                                                     "size": 1024}]},
    {"input": "b" * 40, "info_hash": "b" * 40, "status": "unknown"},
]}


def test_it_draws_a_finished_calibration_as_a_table_without_a_reload(
        server, transactional_db, redis_conn, slow_tool, new_page):
    from tasks import services

    page = new_page()
    seed = submit_slow(page, server)  # the page's visitor exists from here
    task = Task.objects.create(owner=Task.objects.get(pk=seed).owner, kind="calibration", status=S.RUNNING,
                               params={"connection": 1, "connection_name": "main", "hashes": ["a" * 40, "b" * 40]},
                               timeout=60, started_at=timezone.now(), heartbeat_at=timezone.now())
    open_live(page, f"{server.url}/tasks/{task.pk}/")
    assert not page.locator(".results-table").count()
    services.task_complete(task_id=task.pk, result=CALIBRATED)
    page.locator(".results-table").wait_for(timeout=10000)
    rows = page.locator(".results-table tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").all_inner_texts()[1:] == ["Found", "2", "3.0\xa0KB"]
    assert "Holiday.Photos.2024" in rows.nth(0).inner_text() and "a" * 40 in rows.nth(0).inner_text()
    assert rows.nth(1).locator("td").all_inner_texts()[1:] == ["Unknown to qBittorrent", "—", "—"]
    rows.nth(0).get_by_text("2 items").click()
    assert rows.nth(0).get_by_text("Holiday.Photos.2024/002.jpg").is_visible()
    assert page.locator("[data-result-raw]").get_attribute("open") is None  # the JSON folded away
    assert_not_reloaded(page)


def test_it_adds_only_tasks_whose_title_has_the_search_text_to_a_searched_list(
        server, transactional_db, redis_conn, slow_tool, new_page):
    page = new_page()
    page.goto(f"{server.url}/tasks/")

    def submit(title):
        return api_post(page, server.url, "/api/tasks/", {
            "kind": "command", "title": title, "params": {"template": "slow", "args": {"steps": 1}}})["task_id"]

    earlier = submit("earlier run")  # the filters show once there is a task
    page.goto(f"{server.url}/tasks/")
    page.get_by_label("Title contains").fill("Nightly")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/tasks/?*q=Nightly*")
    wait_for(lambda: page.locator("[data-live-indicator]").get_attribute("data-state") == "live", 10, message="live")
    mark_document(page)
    assert page.locator("[data-count]").inner_text() == "0"
    other = submit("other run")
    nightly = submit("nightly run")
    wide = submit("ＮＩＧＨＴＬＹ ｒｅｐｏｒｔ")  # full-width, as Chinese input methods type it: the same text
    page.locator(f'[data-task-id="{nightly}"]').wait_for()
    page.locator(f'[data-task-id="{wide}"]').wait_for()
    assert not page.locator(f'[data-task-id="{other}"], [data-task-id="{earlier}"]').count()
    assert page.locator("[data-count]").inner_text() == "2"
    assert_not_reloaded(page)


def test_it_cancels_all_then_deletes_all_from_the_list_and_another_tab_follows(
        server, transactional_db, redis_conn, slow_tool, new_page):
    page = new_page()
    page.goto(f"{server.url}/tasks/")
    ids = [api_post(page, server.url, "/api/tasks/", {
        "kind": "command", "params": {"template": "slow", "args": {"steps": 1}}})["task_id"] for _ in range(3)]
    other = new_page(page.context)
    other.goto(f"{server.url}/tasks/")
    wait_for(lambda: other.locator("[data-live-indicator]").get_attribute("data-state") == "live", 10, message="live")
    mark_document(other)
    page.goto(f"{server.url}/tasks/")
    assert not page.get_by_role("button", name="Delete all finished").count()
    page.get_by_role("button", name="Cancel all unfinished").click()
    page.locator("[data-confirm-dialog]").get_by_role("button", name="Yes, go ahead").click()
    page.get_by_text("Cancellation requested for 3 tasks.").wait_for()
    assert sorted(Task.objects.filter(pk__in=ids).values_list("status", flat=True)) == [S.CANCELLED] * 3
    for task_id in ids:  # the other tab saw each change live
        badge = other.locator(f'[data-task-id="{task_id}"] [data-f="status_label"]')
        wait_for(lambda: badge.inner_text() == "Cancelled", 10, message="cancelled in the other tab")

    page.get_by_role("button", name="Delete all finished").click()
    dialog = page.locator("[data-confirm-dialog]")
    assert "every finished task in this list" in dialog.inner_text()
    dialog.get_by_role("button", name="Yes, go ahead").click()
    page.get_by_text("Deleted 3 finished tasks.").wait_for()
    assert not Task.objects.filter(pk__in=ids).exists()
    for task_id in ids:
        other.locator(f'[data-task-id="{task_id}"]').wait_for(state="detached", timeout=10000)
    assert other.locator("[data-count]").inner_text() == "0"
    assert_not_reloaded(other)


def test_it_switches_to_chinese_on_every_page_and_stays_live(server, workers, slow_tool, new_page):
    workers(1)
    page = new_page(locale="en-US")
    task_id = submit_form(page, server.url, steps=200, sleep=0.1)
    assert page.locator("html").get_attribute("lang") == "en"
    page.locator(".topbar").get_by_role("button", name="中文").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.url.endswith(f"/tasks/{task_id}/")
    assert page.locator(".menu summary").inner_text().strip() == "我的"
    assert page.get_by_role("heading", name="进度").is_visible()
    badge = page.locator('[data-task-detail] [data-f="status_label"]').first
    wait_for(lambda: badge.inner_text() == "运行中", 20, message="running, in Chinese, live")
    wait_for(lambda: page.locator("[data-live-indicator]").inner_text().strip() == "实时", 10, message="实时")
    page.locator('[data-task-detail] form[data-action="cancel"] button').click()
    page.get_by_role("button", name="确定").click()
    wait_for(lambda: badge.inner_text() == "已取消", 20, message="cancelled, in Chinese, live")
    for path in ("/", "/tasks/", "/account/"):
        page.goto(f"{server.url}{path}")
        assert page.locator("html").get_attribute("lang") == "zh-hans", path
        assert page.locator(".menu summary").inner_text().strip() == "我的", path
    page.locator(".topbar").get_by_role("button", name="EN").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator(".menu summary").inner_text().strip() == "Mine"


def test_it_follows_the_browser_language_at_first(server, transactional_db, slow_tool, new_page):
    page = new_page(locale="zh-CN")
    page.goto(f"{server.url}/tasks/")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.get_by_role("heading", name="我的任务").is_visible()
    assert page.get_by_text("还没有任务").is_visible()


def test_it_answers_404_for_another_visitors_task(server, transactional_db, redis_conn, slow_tool, new_page):
    owner = new_page()
    task_id = submit_form(owner, server.url, steps=1, sleep=0)
    stranger = new_page()
    response = stranger.goto(f"{server.url}/tasks/{task_id}/")
    assert response.status == 404
    assert stranger.get_by_role("heading", name="There is nothing here").is_visible()
    api = stranger.evaluate(f"fetch('/api/tasks/{task_id}/').then(r => r.status)")
    assert api == 404
    stranger.goto(f"{server.url}/tasks/")
    assert stranger.locator(f'[data-task-id="{task_id}"]').count() == 0
    stranger.allowed_errors = ["404"]


def test_it_notifies_when_a_task_finishes_once_opted_in(server, workers, slow_tool, new_page):
    workers(1)
    page = new_page()
    page.add_init_script("""
        window.__notes = [];
        window.Notification = class {
            static permission = 'default';
            static requestPermission() { Notification.permission = 'granted'; return Promise.resolve('granted'); }
            constructor(title, options) { window.__notes.push({title, body: options.body, tag: options.tag}); }
            addEventListener() {}
        };
    """)
    page.goto(f"{server.url}/tasks/")
    toggle = page.locator("[data-notify-toggle]")
    assert toggle.get_attribute("aria-pressed") == "false"
    toggle.click()
    wait_for(lambda: toggle.get_attribute("aria-pressed") == "true", 5, message="opted in")
    assert toggle.inner_text().strip() == "Notifications on"
    page.evaluate("""async () => {
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        await fetch('/api/tasks/', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrf},
            body: JSON.stringify({kind: 'command', title: 'quick one', params: {template: 'slow', args: {steps: 2}}})});
    }""")
    wait_for(lambda: page.evaluate("window.__notes.length") == 1, 30, message="a notification")
    note = page.evaluate("window.__notes[0]")
    assert note["title"] == "Task completed" and note["body"] == "quick one"
    time.sleep(1)
    assert page.evaluate("window.__notes.length") == 1  # once per task


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_it_fits_phone_and_desktop_widths(server, transactional_db, redis_conn, slow_tool, new_page, viewport):
    page = new_page(viewport=viewport)
    task_id = submit_form(page, server.url, steps=1, sleep=0)
    for path in ("/", "/tasks/", f"/tasks/{task_id}/", "/account/", "/nowhere/"):
        page.goto(f"{server.url}{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, overflow)
        assert page.locator(".menu summary").is_visible()
        assert page.locator(".topbar").get_by_role("button", name="中文").is_visible()
    # The "Mine" menu opens by keyboard and closes on Escape.
    page.goto(f"{server.url}/tasks/")
    page.locator(".menu summary").focus()
    page.keyboard.press("Enter")
    assert page.get_by_role("link", name="Account").is_visible()
    page.keyboard.press("Escape")
    assert page.get_by_role("link", name="Account").is_hidden()
    page.allowed_errors = ["404"]


def test_it_cuts_a_long_title_short_in_the_breadcrumb_not_the_link_before_it(
        server, transactional_db, redis_conn, slow_tool, new_page):
    page = new_page(viewport=PHONE, locale="zh-CN")
    page.goto(f"{server.url}/tasks/")
    task_id = api_post(page, server.url, "/api/tasks/", {
        "kind": "command", "title": "一个很长很长的任务标题，" * 6, "params": {"template": "slow", "args": {"steps": 1}}})["task_id"]
    page.goto(f"{server.url}/tasks/{task_id}/")
    crumbs = page.locator(".crumbs")
    link, title = crumbs.get_by_role("link", name="我的任务"), crumbs.locator('[aria-current="page"]')
    # One line each: the link as tall as the (one-line) title, which ends in an ellipsis.
    assert link.evaluate("el => el.getBoundingClientRect().height") == title.evaluate(
        "el => el.getBoundingClientRect().height")
    assert link.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert title.evaluate("el => el.scrollWidth > el.clientWidth && getComputedStyle(el).textOverflow === 'ellipsis'")


def test_it_rings_the_current_language_button_when_it_has_the_keyboard_focus(server, transactional_db, new_page):
    page = new_page(locale="en-US")
    page.goto(f"{server.url}/tasks/")
    switch = page.locator(".topbar .lang")
    switch.get_by_role("button", name="中文").focus()
    page.keyboard.press("Shift+Tab")  # by keyboard, so :focus-visible applies
    current = switch.locator('[aria-pressed="true"]')
    assert current.evaluate("el => el === document.activeElement && el.matches(':focus-visible')")
    assert "0px 0px 0px 3px" in current.evaluate("el => getComputedStyle(el).boxShadow")  # --focus, the ring


def test_it_offers_retry_live_when_a_download_completes_with_failed_files(
        server, transactional_db, redis_conn, slow_tool, new_page):
    from tasks import services

    page = new_page()
    seed = submit_slow(page, server)  # the page's visitor exists from here
    urls = ["http://93.184.216.34/a.bin", "http://93.184.216.34/b.bin"]
    task = Task.objects.create(owner=Task.objects.get(pk=seed).owner, kind="download", status=S.RUNNING,
                               params={"urls": urls, "names": [None, None], "connections": 1},
                               timeout=60, started_at=timezone.now(), heartbeat_at=timezone.now())
    for url in (f"{server.url}/tasks/{task.pk}/", f"{server.url}/tasks/"):
        Task.objects.filter(pk=task.pk).update(status=S.RUNNING, result=None)
        open_live(page, url)
        retry = page.locator(f'[data-task-id="{task.pk}"] form[data-action="retry"]')
        assert retry.is_hidden()
        services.task_complete(task_id=task.pk, result={
            "files": [{"index": 0, "url": urls[0], "name": "a.bin", "size": 3}],
            "failed": [{"index": 1, "url": urls[1], "name": "b.bin", "error_code": 3, "error": "Resource not found"}],
            "total_files": 2, "completed_files": 1, "failed_files": 1, "downloaded_size": 3})
        retry.wait_for(state="visible", timeout=10000)
        assert_not_reloaded(page)


def test_it_shows_the_filters_and_bulk_buttons_as_tasks_arrive_and_finish(
        server, transactional_db, redis_conn, slow_tool, new_page):
    page = new_page()
    Task.objects.filter(pk=submit_slow(page, server)).delete()  # a visitor with no tasks
    open_live(page, f"{server.url}/tasks/")
    filters, bulk = page.locator("[data-filters]"), page.locator("[data-bulk]")
    cancel_all = page.get_by_role("button", name="Cancel all unfinished")
    delete_finished = page.get_by_role("button", name="Delete all finished")
    assert filters.is_hidden() and bulk.is_hidden()
    task_id = api_post(page, server.url, "/api/tasks/", {
        "kind": "command", "params": {"template": "slow", "args": {"steps": 1}}})["task_id"]
    cancel_all.wait_for(state="visible", timeout=10000)
    assert filters.is_visible() and delete_finished.is_hidden()
    api_post(page, server.url, f"/api/tasks/{task_id}/cancel/")
    delete_finished.wait_for(state="visible", timeout=10000)
    assert cancel_all.is_hidden()
    assert_not_reloaded(page)
