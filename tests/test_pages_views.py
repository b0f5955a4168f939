"""The pages over HTTP (no browser): submit through the form, list, detail, actions without
JavaScript, the account page, ownership 404s, language, limits, escaping and headers."""

import json
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from tasks.models import CommandTemplate, Task, TaskKind
from tasks.pages import CSP

S = Task.Status
P = "command-"


@pytest.fixture
def open_tool(db, redis_conn):
    CommandTemplate.objects.filter(name="countdown").delete()
    return CommandTemplate.objects.create(
        name="demo", description="A demo tool", allow_everyone=True, argv=["{python}", "-c", "print('{word}')"],
        param_schema=[{"name": "word", "required": True, "pattern": "[a-z]{1,12}"},
                      {"name": "times", "type": "integer", "min": 1, "max": 9, "default": 3}],
    )


def form_data(**fields):
    """The demo tool's form as a browser posts it: word=... becomes command-demo__word."""
    data = {P + "template": "demo", P + "priority": "5", P + "title": ""}
    for name, value in fields.items():
        data[P + (name if name in ("template", "priority", "title") else f"demo__{name}")] = value
    return data


def html_text(response):
    return re.sub(r"\s+", " ", response.content.decode())


def make_task(owner, **fields):
    defaults = {"kind": TaskKind.COMMAND, "params": {"template": "demo", "args": {}}, "timeout": 60,
                "status": S.COMPLETED, "timeline": []}
    defaults.update(fields)
    return Task.objects.create(owner=owner, **defaults)


def test_it_renders_the_new_task_form_for_a_first_time_visitor(open_tool):
    home = html_text(Client().get("/"))
    assert "New task" in home and 'href="/new/command/"' in home or 'name="command-template"' in home
    response = Client().get("/new/command/")
    assert response.status_code == 200
    text = html_text(response)
    assert 'name="command-template"' in text and 'name="command-demo__word"' in text
    assert 'name="csrfmiddlewaretoken"' in text
    assert "A demo tool" in text and "A whole number from 1 to 9. Default: 3." in text
    assert response["Content-Security-Policy"] == CSP
    assert "<script>" not in text and " onclick=" not in text and " style=" not in text
    client = json.loads(re.search(r'<script id="mc-client" type="application/json">(.*?)</script>', text).group(1))
    assert client["strings"]["live"] == "Live"
    assert client["rules"]["deletable"] == list(Task.TERMINAL)
    assert client["labels"]["statuses"]["timeout"] == "Timed out"


def test_it_submits_through_the_form_and_lands_on_the_detail_page(open_tool):
    browser = Client()
    response = browser.post("/new/command/", form_data(word="hello", title="My first"))
    assert response.status_code == 302
    task = Task.objects.get()
    assert response["Location"] == f"/tasks/{task.pk}/?created=1"
    assert task.params == {"template": "demo", "args": {"word": "hello", "times": 3}} and task.title == "My first"
    assert task.owner.username.startswith("visitor-")
    detail = html_text(browser.get(response["Location"]))
    assert "Task created." in detail and "My first" in detail
    assert "Word" in detail and "Times" in detail and "hello" in detail  # params shown with their form labels
    listing = html_text(browser.get("/tasks/"))
    assert f'data-task-id="{task.pk}"' in listing


def test_it_shows_form_and_processor_errors_on_their_fields(open_tool):
    browser = Client()
    response = browser.post("/new/command/", form_data(word="", times="12"))
    assert response.status_code == 400
    text = html_text(response)
    assert 'id="id_command-demo__word_error"' in text and "This field is required." in text
    assert "Ensure this value is less than or equal to 9." in text
    assert 'aria-invalid="true"' in text
    response = browser.post("/new/command/", form_data(word="NOPE"))  # the processor's pattern check
    assert response.status_code == 400
    error = re.search(r'id="id_command-demo__word_error"[^>]*>(.*?)</p>', html_text(response)).group(1)
    assert "does not match the pattern" in error
    assert Task.objects.count() == 0 and get_user_model().objects.count() == 0  # no identity for a refused submit


def test_it_says_clearly_when_a_limit_is_hit(open_tool, settings, alice):
    settings.MEDIACRAFT_USER_MAX_PENDING = 1
    settings.MEDIACRAFT_GLOBAL_CONCURRENCY = 1
    make_task(alice, status=S.RUNNING)
    browser = Client()
    browser.force_login(alice)
    first = browser.post("/new/command/", form_data(word="one"))
    assert first.status_code == 302
    detail = html_text(browser.get(first["Location"]))
    assert "You already have 1 task running (limit 1); this one will start when it finishes." in detail
    refused = html_text(browser.post("/new/command/", form_data(word="two")))
    assert "You already have 1 task waiting; wait for it to finish or cancel it." in refused
    assert 'class="form-errors"' in refused and "data-form-errors role=\"alert\" hidden" not in refused


def test_it_counts_tasks_in_the_limit_messages_with_plural_forms(open_tool, settings, alice):
    from django.utils import translation

    from tasks import messages, services

    for n, english in ((1, "You already have 1 task running (limit 1); this one will start when it finishes."),
                       (2, "You already have 2 tasks running (limit 2); this one will start when one finishes.")):
        assert messages.render(messages.MESSAGES, "user_limit", {"active": n, "limit": n}) == english
        with translation.override("zh-hans"):
            assert messages.render(messages.MESSAGES, "user_limit", {"active": n, "limit": n}) == (
                f"您已有 {n} 个任务在运行（上限 {n}）；其中一个完成后此任务将开始。")
    settings.MEDIACRAFT_USER_MAX_PENDING = 2
    make_task(alice, status=S.PENDING)
    make_task(alice, status=S.PENDING)
    for language, expected in (("en", "You already have 2 tasks waiting; wait for some to finish or cancel them."),
                               ("zh-hans", "您已有 2 个任务在等待；请等待部分任务完成或取消它们。")):
        with translation.override(language), pytest.raises(services.ApiError) as err:
            services.task_submit(owner=alice, kind="command", params={"template": "demo", "args": {"word": "x"}})
        assert str(err.value.message) == expected


def test_it_prepares_an_upload_submission_as_json(open_tool):
    browser = Client()
    ok = browser.post("/new/command/", form_data(word="hi", times="2"), HTTP_X_MEDIACRAFT_PREPARE="1")
    assert ok.status_code == 200
    assert ok.json() == {
        "submission": {"kind": "command", "params": {"template": "demo", "args": {"word": "hi", "times": 2}},
                       "title": "", "priority": 5},
        "field_map": {"template": "id_command-template", "args.word": "id_command-demo__word",
                      "args.times": "id_command-demo__times", "title": "id_command-title", "priority": "id_command-priority"},
    }
    bad = browser.post("/new/command/", form_data(word=""), HTTP_X_MEDIACRAFT_PREPARE="1")
    assert bad.status_code == 400 and list(bad.json()["errors"]) == ["id_command-demo__word"]
    assert Task.objects.count() == 0


def test_it_lists_my_tasks_newest_first_with_filters_and_pages(open_tool, alice, bob, monkeypatch):
    monkeypatch.setattr("tasks.pages.PAGE_SIZE", 3)
    now = timezone.now()
    for i in range(5):
        task = make_task(alice, title=f"task {i}", status=S.FAILED if i % 2 else S.COMPLETED)
        Task.objects.filter(pk=task.pk).update(created_at=now - timezone.timedelta(minutes=10 - i))
    make_task(bob, title="bob's")
    browser = Client()
    browser.force_login(alice)
    first = html_text(browser.get("/tasks/"))
    assert re.findall(r'data-f="display_title"[^>]*>(task \d)<', first) == ["task 4", "task 3", "task 2"]
    assert "bob's" not in first and "Page 1 of 2" in first and 'rel="next" href="?page=2"' in first
    second = html_text(browser.get("/tasks/?page=2"))
    assert re.findall(r'data-f="display_title"[^>]*>(task \d)<', second) == ["task 1", "task 0"]
    failed = html_text(browser.get("/tasks/?status=failed"))
    assert re.findall(r'data-f="display_title"[^>]*>(task \d)<', failed) == ["task 3", "task 1"]
    assert '<option value="failed" selected>' in failed
    assert 'data-status="failed"' in failed
    none = html_text(browser.get("/tasks/?kind=download"))
    assert "No tasks match these filters" in none
    junk = browser.get("/tasks/?status=nonsense&page=banana")
    assert junk.status_code == 200


def test_it_searches_the_titles_and_keeps_the_search_across_pages_and_bulk_buttons(open_tool, alice, monkeypatch):
    monkeypatch.setattr("tasks.pages.PAGE_SIZE", 2)
    now = timezone.now()
    for i, title in enumerate(["Nightly export 1", "weekly export", "nightly export 2", "NIGHTLY export 3"]):
        task = make_task(alice, title=title)
        Task.objects.filter(pk=task.pk).update(created_at=now - timezone.timedelta(minutes=10 - i))
    browser = Client()
    browser.force_login(alice)
    first = html_text(browser.get("/tasks/", {"q": "nightly"}))
    assert re.findall(r'data-f="display_title"[^>]*>([^<]*export[^<]*)<', first) == ["NIGHTLY export 3", "nightly export 2"]
    assert 'name="q" value="nightly"' in first and 'data-q="nightly"' in first
    assert 'rel="next" href="?q=nightly&amp;page=2"' in first and "Page 1 of 2" in first
    assert '<input type="hidden" name="q" value="nightly">' in first and "Clear filters" in first
    second = html_text(browser.get("/tasks/", {"q": "nightly", "page": "2"}))
    assert re.findall(r'data-f="display_title"[^>]*>([^<]*export[^<]*)<', second) == ["Nightly export 1"]
    response = browser.post("/tasks/bulk/delete-finished/", {"q": "nightly", "status": "", "kind": ""})
    assert response["Location"] == "/tasks/?q=nightly"
    assert "Deleted 3 finished tasks." in html_text(browser.get(response["Location"]))
    assert list(Task.objects.values_list("title", flat=True)) == ["weekly export"]
    # A search no title can hold is no filter on the page (the API answers it with a 400).
    junk = html_text(browser.get("/tasks/", {"q": "a\x00b"}))
    assert "weekly export" in junk and 'name="q" value=""' in junk


def test_it_shows_an_empty_state_to_a_new_visitor(open_tool):
    text = html_text(Client().get("/tasks/"))
    assert "No tasks yet" in text and 'href="/"' in text
    assert re.search(r"<form [^>]*data-filters[^>]* hidden>", text)  # until a task arrives (tasks.js)
    assert re.search(r'<div class="bulk" data-bulk[^>]* hidden>', text)


def test_it_renders_stored_text_inert(open_tool, alice):
    task = make_task(alice, title='<img src=x onerror="alert(1)">', status=S.FAILED, error_code="command_failed",
                     error_params={"exit_code": 3}, error_detail="<script>alert(2)</script>",
                     result={"html": "<b>bold</b>"})
    browser = Client()
    browser.force_login(alice)
    for url in ("/tasks/", f"/tasks/{task.pk}/"):
        text = browser.get(url).content.decode()
        assert '<img src=x' not in text and "<script>alert" not in text and "<b>bold" not in text
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in text
    detail = html_text(browser.get(f"/tasks/{task.pk}/"))
    assert "The tool exited with code 3." in detail and "Technical details" in detail
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in detail


def test_it_answers_404_for_someone_elses_task_and_for_nonsense(open_tool, alice, bob):
    task = make_task(bob)
    browser = Client()
    browser.force_login(alice)
    for url in (f"/tasks/{task.pk}/", f"/tasks/{uuid.uuid4()}/", "/tasks/not-a-uuid/", "/nowhere/"):
        response = browser.get(url)
        assert response.status_code == 404, url
        assert "There is nothing here" in response.content.decode()
    assert Client().get(f"/tasks/{task.pk}/").status_code == 404
    assert browser.post(f"/tasks/{task.pk}/cancel/").status_code == 404
    assert Task.objects.filter(pk=task.pk).exists()


def test_it_runs_the_actions_without_javascript(open_tool, alice):
    task = make_task(alice, status=S.PENDING)
    browser = Client()
    browser.force_login(alice)
    assert browser.get(f"/tasks/{task.pk}/cancel/").status_code == 405
    response = browser.post(f"/tasks/{task.pk}/cancel/", {"next": "/tasks/"})
    assert response.status_code == 302 and response["Location"] == "/tasks/"
    assert Task.objects.get(pk=task.pk).status == S.CANCELLED
    assert "Cancellation requested." in html_text(browser.get("/tasks/"))
    response = browser.post(f"/tasks/{task.pk}/retry/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/tasks/{task.pk}/"
    assert Task.objects.get(pk=task.pk).status in (S.PENDING, S.QUEUED)
    refused = browser.post(f"/tasks/{task.pk}/delete/", {"next": f"/tasks/{task.pk}/"})
    assert "Cancel the task before deleting it." in html_text(browser.get(refused["Location"]))
    browser.post(f"/tasks/{task.pk}/cancel/")
    deleted = browser.post(f"/tasks/{task.pk}/delete/", {"next": f"/tasks/{task.pk}/"})
    assert deleted["Location"] == "/tasks/" and not Task.objects.filter(pk=task.pk).exists()
    assert browser.post(f"/tasks/{task.pk}/explode/").status_code == 404


def test_it_cancels_all_unfinished_and_deletes_all_finished_tasks_its_filters_show(open_tool, alice, bob):
    for name, status, kind in (("done", S.COMPLETED, TaskKind.COMMAND), ("broke", S.FAILED, TaskKind.COMMAND),
                               ("waits", S.PENDING, TaskKind.COMMAND), ("fetch", S.PENDING, TaskKind.DOWNLOAD),
                               ("fetched", S.COMPLETED, TaskKind.DOWNLOAD)):
        make_task(alice, title=name, status=status, kind=kind)
    bobs = [make_task(bob, status=S.COMPLETED), make_task(bob, status=S.PENDING)]
    browser = Client()
    browser.force_login(alice)
    listed = html_text(browser.get("/tasks/?kind=download"))
    assert "Cancel all unfinished" in listed and "Delete all finished" in listed
    assert re.search(r'action="/tasks/bulk/delete-finished/" data-confirm="confirm_delete_finished" '
                     r'data-bulk-action="delete-finished">.*?'
                     r'name="status" value="">.*?name="kind" value="download">', listed)
    # Only what the filters show: the download tasks.
    response = browser.post("/tasks/bulk/cancel-all/", {"kind": "download", "status": ""})
    assert response.status_code == 302 and response["Location"] == "/tasks/?kind=download"
    assert "Cancellation requested for 1 task." in html_text(browser.get(response["Location"]))
    response = browser.post("/tasks/bulk/delete-finished/", {"kind": "download", "status": ""})
    assert "Deleted 2 finished tasks." in html_text(browser.get(response["Location"]))
    assert set(Task.objects.filter(owner=alice).values_list("title", flat=True)) == {"done", "broke", "waits"}
    # A status filter the action cannot take is refused, naming it; nothing changes.
    response = browser.post("/tasks/bulk/delete-finished/", {"status": "pending"})
    assert response["Location"] == "/tasks/?status=pending"
    assert "Only finished tasks can be deleted; “Pending” tasks have not finished." in html_text(
        browser.get(response["Location"]))
    assert Task.objects.filter(owner=alice).count() == 3
    response = browser.post("/tasks/bulk/delete-finished/", {"status": "failed"})
    assert "Deleted 1 finished task." in html_text(browser.get(response["Location"]))
    # Nothing left to do: said so; the buttons are there only for what there is.
    browser.post("/tasks/bulk/cancel-all/")
    assert "No finished tasks to delete." in html_text(browser.get(browser.post("/tasks/bulk/delete-finished/", {
        "status": "timeout"})["Location"]))
    assert "No unfinished tasks to cancel." in html_text(browser.get(browser.post("/tasks/bulk/cancel-all/")["Location"]))
    listed = html_text(browser.get("/tasks/"))
    shown = re.findall(r'<form [^>]*data-bulk-action="([a-z-]+)"(?! hidden)[^>]*>', listed)
    assert shown == ["delete-finished"]  # the other is drawn hidden, for tasks.js to show when one arrives
    assert browser.post("/tasks/bulk/explode/").status_code == 404
    assert browser.get("/tasks/bulk/cancel-all/").status_code == 405
    assert Task.objects.filter(pk__in=[t.pk for t in bobs]).count() == 2
    assert sorted(Task.objects.filter(owner=bob).values_list("status", flat=True)) == [S.COMPLETED, S.PENDING]


def test_its_bulk_buttons_touch_nobody_elses_tasks(open_tool, alice, bob):
    alices = [make_task(alice, status=S.COMPLETED), make_task(alice, status=S.PENDING)]
    anonymous, bobs_browser = Client(), Client()
    bobs_browser.force_login(bob)
    for browser in (anonymous, bobs_browser):
        for action in ("cancel-all", "delete-finished"):
            response = browser.post(f"/tasks/bulk/{action}/")
            assert response.status_code == 302
            assert "No " in html_text(browser.get(response["Location"]))
    assert [Task.objects.get(pk=t.pk).status for t in alices] == [S.COMPLETED, S.PENDING]
    assert get_user_model().objects.count() == 2  # no visitor made for nothing


def test_it_needs_csrf_on_page_forms(open_tool, alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.post("/new/command/", form_data(word="hello")).status_code == 403
    assert browser.post("/account/tokens/", {"token-name": "x"}).status_code == 403
    assert Task.objects.count() == 0


def test_it_claims_logs_out_and_logs_back_in_from_the_account_page(open_tool):
    browser = Client()
    assert "You have not started anything yet" in html_text(browser.get("/account/"))
    browser.post("/new/command/", form_data(word="mine"))
    task = Task.objects.get()
    page = html_text(browser.get("/account/"))
    assert "You are a visitor" in page and "Claim this account" in page
    refused = browser.post("/account/logout/")
    assert "Claim your account with a password before logging out" in html_text(browser.get(refused["Location"]))
    mismatch = browser.post("/account/claim/", {"claim-username": "carol", "claim-password": "long-secret-9",
                                                "claim-password2": "other-secret-9"})
    assert mismatch.status_code == 400 and "The two passwords differ." in html_text(mismatch)
    weak = browser.post("/account/claim/", {"claim-username": "carol", "claim-password": "1234",
                                            "claim-password2": "1234"})
    assert weak.status_code == 400 and 'id="id_claim-password_error"' in html_text(weak)
    done = browser.post("/account/claim/", {"claim-username": "carol", "claim-password": "long-secret-9",
                                            "claim-password2": "long-secret-9"})
    assert done.status_code == 302
    page = html_text(browser.get("/account/"))
    assert "Logged in as <strong>carol</strong>." in page and "Your account is claimed" in page
    browser.post("/account/logout/")
    assert "You are logged out." in html_text(browser.get("/account/"))
    other = Client()
    other.post("/new/command/", form_data(word="theirs"))
    wrong = other.post("/account/login/", {"login-username": "carol", "login-password": "nope"})
    assert wrong.status_code == 400 and "Wrong username or password." in html_text(wrong)
    ok = other.post("/account/login/", {"login-username": "carol", "login-password": "long-secret-9"})
    assert ok.status_code == 302 and ok["Location"] == "/tasks/"
    listing = html_text(other.get("/tasks/"))
    assert "Welcome back, carol." in listing
    assert Task.objects.filter(owner__username="carol").count() == 2 and str(task.pk) in listing


def test_it_shows_a_new_api_token_once_and_revokes_it(open_tool, alice, bob):
    browser = Client()
    browser.force_login(alice)
    posted = browser.post("/account/tokens/", {"token-name": "backup <script>"})
    assert posted.status_code == 302 and posted["Location"] == "/account/#tokens"  # a reload makes no second one
    assert "mc_" not in posted.content.decode()
    created = browser.get("/account/")
    assert created["Cache-Control"] == "no-store"
    raw = re.search(r'id="new-token"[^>]*>(mc_[^<]+)<', created.content.decode()).group(1)
    assert "backup &lt;script&gt;" in created.content.decode()
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/tasks/").status_code == 200
    again = browser.get("/account/").content.decode()
    assert raw not in again and raw[:10] in again and 'id="new-token"' not in again
    assert alice.api_tokens.count() == 1
    token_id = alice.api_tokens.get().pk
    bob_browser = Client()
    bob_browser.force_login(bob)
    bob_browser.post(f"/account/tokens/{token_id}/revoke/")
    assert alice.api_tokens.exists()
    browser.post(f"/account/tokens/{token_id}/revoke/")
    assert not alice.api_tokens.exists()
    assert api.get("/api/tasks/").status_code == 401


def test_it_follows_accept_language_then_the_language_switch(open_tool, alice):
    make_task(alice, status=S.CANCELLED)
    browser = Client(HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    browser.force_login(alice)
    page = html_text(browser.get("/tasks/"))
    assert '<html lang="zh-hans">' in page and "已取消" in page
    switched = browser.post("/i18n/setlang/", {"language": "en", "next": "/tasks/"})
    assert switched.status_code == 302 and switched["Location"] == "/tasks/"
    page = html_text(browser.get("/tasks/"))
    assert '<html lang="en">' in page and "Cancelled" in page
    for url in ("/", "/tasks/", "/account/"):
        assert 'action="/i18n/setlang/"' in browser.get(url).content.decode(), url


def test_it_has_a_plain_500_page(rf):
    from tasks.pages import server_error

    response = server_error(rf.get("/boom"))
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()
    from mediacraft import urls

    assert urls.handler500 == "tasks.pages.server_error" and urls.handler404 == "tasks.pages.page_not_found"


def test_it_has_a_plain_translated_400_page_for_a_body_it_cannot_read(client_for, alice):
    from django.utils import translation

    with translation.override("en"):  # the request switches this thread to Chinese: switch back after
        response = client_for(alice).generic("POST", "/", b"xx", content_type="multipart/form-data",
                                             headers={"Accept-Language": "zh-hans"})
    assert response.status_code == 400 and "请求内容不是有效的 multipart/form-data" in response.content.decode()


def test_it_serves_its_own_scripts_styles_and_icons(open_tool):
    browser = Client()
    for path, kind in (("/static/mediacraft/js/app.js", "javascript"), ("/static/mediacraft/app.css", "css"),
                       ("/static/mediacraft/icons.svg", "svg")):
        response = browser.get(path)
        assert response.status_code == 200 and kind in response["Content-Type"], path
    page = browser.get("/").content.decode()
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no CDN


def test_it_shows_result_files_with_a_player_and_inputs_by_name(open_tool, alice):
    from storage.models import StoredFile

    task = make_task(alice, kind=TaskKind.WATERMARK, params={"files": ["x"], "method": "delogo"},
                     result={"notes": []})
    common = {"owner": alice, "task": task, "stored_name": "f", "path": "f", "sha256": "0" * 64}
    source = StoredFile.objects.create(role="input", original_name="假期 clip.mov", size=3 * 1024 * 1024,
                                       media={"width": 640, "height": 360, "duration": 4.0}, **common)
    video = StoredFile.objects.create(role="output", original_name="假期 clip-nologo.mp4", size=1536,
                                      media={"width": 640, "height": 360, "duration": 4.0}, **common)
    StoredFile.objects.create(role="output", original_name="notes.txt", size=12, position=1, **common)
    browser = Client()
    browser.force_login(alice)
    raw = browser.get(f"/tasks/{task.pk}/").content.decode()
    assert "1.5\xa0KB" in raw and "12\xa0B" in raw and "3.0\xa0MB" in raw  # sizes as the page's JS formats them
    detail = re.sub(r"[ \t\n\r]+", " ", raw)
    assert f'<video class="file__player" controls preload="metadata" src="/api/files/{video.pk}/download/?inline=1">' in detail
    assert detail.count("<video") == 1  # notes.txt gets no player
    assert "假期 clip-nologo.mp4" in detail
    assert f'href="/api/files/{video.pk}/download/" download' in detail
    assert "Input files" in detail and "假期 clip.mov" in detail
    assert str(source.pk) not in detail.split("Input files")[1].split("</section>")[0]  # names, not ids
    listing = html_text(browser.get("/tasks/"))
    assert f'href="/tasks/{task.pk}/#files"' in listing  # two outputs: download leads to the files


def test_it_shows_parameters_as_people_read_them(open_tool, alice):
    boxes = [{"x": 34, "y": 30, "w": 232, "h": 82}, {"x": 5, "y": 6, "w": 7, "h": 8}]
    watermark = make_task(alice, kind=TaskKind.WATERMARK, params={
        "rects": boxes, "start": None, "end": 4.5, "method": "delogo", "notes": [], "flag": True, "deep": [[1, 2]],
        "extra": [{"b": 2, "a": "one"}]})
    download = make_task(alice, kind=TaskKind.DOWNLOAD, params={"urls": ["http://a.example/1", "http://a.example/2"]})
    browser = Client()
    browser.force_login(alice)

    def params(task):
        page = browser.get(f"/tasks/{task.pk}/").content.decode()
        section = page.split('id="params-heading"')[1].split("</section>")[0]
        return dict(re.findall(r'<div class="kv__row"><dt>(.*?)</dt><dd>(.*?)</dd></div>', section, re.S))

    shown = params(watermark)
    assert shown["Logo boxes"] == "34, 30, 232, 82\n5, 6, 7, 8"  # as the form takes them, one per line
    assert shown["To second"] == "4.5" and shown["flag"] == "Yes" and shown["deep"] == "[1, 2]"
    assert shown["Method"] == "Blur from the surrounding pixels (delogo)"  # a choice by its label
    assert shown["extra"] == "a: one, b: 2"
    assert "From second" not in shown and "Notes" not in shown and "notes" not in shown  # unset: left out
    assert params(download)["URLs"] == "http://a.example/1\nhttp://a.example/2"


def param_shown(browser, task, **headers):
    page = browser.get(f"/tasks/{task.pk}/", **headers).content.decode()
    section = page.split('id="params-heading"')[1].split("</section>")[0]
    return dict(re.findall(r'<div class="kv__row"><dt>(.*?)</dt><dd>(.*?)</dd></div>', section, re.S))


def test_it_leaves_out_a_downloads_unset_names_and_marks_the_empty_ones(open_tool, alice):
    urls = ["http://a.example/1", "http://a.example/2", "http://a.example/3"]
    unnamed = make_task(alice, kind=TaskKind.DOWNLOAD, params={"urls": urls, "names": [None, None, None]})
    some = make_task(alice, kind=TaskKind.DOWNLOAD, params={"urls": urls, "names": [None, "my clip.mp4", None]})
    browser = Client()
    browser.force_login(alice)
    assert "File names" not in param_shown(browser, unnamed)
    assert param_shown(browser, some)["File names"] == "—\nmy clip.mp4\n—"


def test_it_shows_a_calibrations_connection_once_by_name_in_the_viewers_language(open_tool, alice):
    task = make_task(alice, kind=TaskKind.CALIBRATION,
                     params={"connection": 1, "connection_name": "local", "hashes": ["a" * 40]})
    browser = Client()
    browser.force_login(alice)
    shown = param_shown(browser, task, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert shown["qBittorrent 连接"] == "local"
    assert not {"connection", "connection_name"} & set(shown) and "1" not in shown.values()


def table_rows(page):
    """The text of each row of the page's result table, tags and runs of spaces as one space."""
    table = page.split('<table class="results-table">')[1].split("</table>")[0]
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
            for row in re.findall(r'<tr class="results-table__row".*?</tr>', table, re.S)]


def test_it_heads_a_result_tables_byte_sizes_with_the_word_for_an_amount(open_tool, alice):
    result = {"files": [{"index": 0, "url": "http://a.example/1", "name": "a.bin", "size": 3}], "failed": []}
    task = make_task(alice, kind=TaskKind.DOWNLOAD, params={"urls": ["http://a.example/1"]}, result=result)
    browser = Client()
    browser.force_login(alice)
    page = browser.get(f"/tasks/{task.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert re.findall(r'<th scope="col">(.*?)</th>', page)[-1] == "大小"  # not 尺寸, a video's width × height
    from django.utils import translation

    from tasks.video_forms import MergeForm

    with translation.override("zh-hans"):
        assert str(MergeForm.base_fields["size"].label) == "尺寸"  # the merge form's size is still one


def test_it_shows_a_calibration_result_as_a_table_with_each_torrents_files(open_tool, alice, monkeypatch):
    from tasks.processors import calibration

    monkeypatch.setattr(calibration, "SHOWN_FILES", 3)
    files = [{"path": f"Show/E{n:02d}.mkv", "size": 1024 * 1024} for n in range(1, 6)]
    result = {"connection": "main", "counts": {}, "items": [
        {"input": "magnet:?xt=urn:btih:" + "c" * 40 + "&dn=<b>Show</b>", "info_hash": "c" * 40, "status": "found",
         "name": "<b>Show</b>", "files": files},
        {"input": "d" * 40, "info_hash": "d" * 40, "status": "timeout", "magnet_name": "Late one"},
    ]}
    task = make_task(alice, kind=TaskKind.CALIBRATION, params={"hashes": ["c" * 40, "d" * 40]}, result=result)
    browser = Client()
    browser.force_login(alice)
    page = browser.get(f"/tasks/{task.pk}/").content.decode()
    cells = table_rows(page)
    assert cells[0].startswith("&lt;b&gt;Show&lt;/b&gt; " + "c" * 40 + " 5 items Show/E01.mkv 1.0")  # inert HTML
    assert "Show/E03.mkv" in cells[0] and "Show/E04.mkv" not in cells[0] and "…and 2 more" in cells[0]
    assert cells[0].endswith("Found 5 5.0 MB")
    assert cells[1] == "Late one " + "d" * 40 + " Timed out waiting for metadata — —"
    assert "<b>Show</b>" not in page
    assert re.search(r"<details class=\"technical\" data-result-raw>", page)  # the JSON folded away
    assert "<div data-result-table data-refresh>" in page
    command = make_task(alice, kind=TaskKind.COMMAND, params={"template": "greet", "args": {}}, result={"stdout": "hi"})
    page = browser.get(f"/tasks/{command.pk}/").content.decode()
    assert "results-table" not in page and re.search(r"<details class=\"technical\" data-result-raw open>", page)
    assert "<div data-result-table>" in page  # a kind without tables: its page is not fetched again when it ends


def test_it_shows_a_downloads_files_and_failures_in_the_order_given(open_tool, alice):
    result = {"total_files": 3, "completed_files": 2, "failed_files": 1, "downloaded_size": 3072,
              "files": [{"index": 0, "url": "http://a.example/x.bin", "name": "x.bin", "size": 1024, "file_id": "f1"},
                        {"index": 2, "url": "http://a.example/z.bin", "name": "z.bin", "size": 2048, "file_id": "f2"}],
              "failed": [{"index": 1, "url": "http://a.example/<y>.bin", "name": "<y>.bin", "error_code": "3",
                          "error": "Resource not found"}]}
    task = make_task(alice, kind=TaskKind.DOWNLOAD, params={"urls": ["http://a.example/x.bin"]}, result=result)
    browser = Client()
    browser.force_login(alice)
    page = browser.get(f"/tasks/{task.pk}/").content.decode()
    cells = table_rows(page)
    assert cells == ["x.bin http://a.example/x.bin Downloaded 1.0 KB",
                     "&lt;y&gt;.bin http://a.example/&lt;y&gt;.bin aria2 error 3: Resource not found Failed —",
                     "z.bin http://a.example/z.bin Downloaded 2.0 KB"]


def test_it_shows_a_strm_sync_by_outcome_with_its_files_and_reasons(open_tool, alice):
    result = {"profile": "Movies", "sync_type": "full", "generated": ["A/a.strm", "B/b.strm"], "skipped": [],
              "failed": ["C/<c>.mkv"], "deleted": [], "errors": [{"path": "C/<c>.mkv", "reason": "HTTP 500"}],
              "totals": {"generated": 5, "skipped": 0, "failed": 1, "deleted": 0, "listed": 6}}
    task = make_task(alice, kind=TaskKind.STRM_SYNC, params={"profile": 1, "profile_name": "Movies"}, result=result)
    browser = Client()
    browser.force_login(alice)
    assert table_rows(browser.get(f"/tasks/{task.pk}/").content.decode()) == [
        "Generated 5 items A/a.strm B/b.strm …and 3 more 5", "Skipped 0",
        "Failed 1 item C/&lt;c&gt;.mkv HTTP 500 1", "Deleted 0"]


def test_it_labels_calibration_counts_and_strm_codes_in_the_viewers_language(open_tool, alice):
    from django.utils import translation

    strm = make_task(alice, kind=TaskKind.STRM_SYNC, status=S.RUNNING, stage="strm_listing",
                     params={"profile": 7, "profile_name": "Movies", "sync_type": "incremental", "trigger": "api"},
                     stats={"sync_type": "full", "listed": 3})
    calibration = make_task(alice, kind=TaskKind.CALIBRATION, status=S.RUNNING, params={"hashes": ["a" * 40]},
                            stats={"total": 4, "found": 1, "unknown": 1, "timeout": 0, "no_metadata": 1, "refused": 1,
                                   "waiting": 0})
    browser = Client(headers={"Accept-Language": "zh-hans"})
    browser.force_login(alice)

    def rows(task, css):
        with translation.override("en"):  # the request switches this thread to Chinese: switch back after
            page = browser.get(f"/tasks/{task.pk}/").content.decode()
        return dict(re.findall(rf'<div class="{css}"><dt>(.*?)</dt><dd>(.*?)</dd></div>', page))

    params = rows(strm, "kv__row")
    assert {k: params[k] for k in ("配置", "配置名称", "同步类型", "触发方式")} == {
        "配置": "7", "配置名称": "Movies", "同步类型": "增量", "触发方式": "手动"}
    assert not {"sync_type", "sync type", "trigger", "profile name"} & set(params)
    assert rows(strm, "stats__item")["同步类型"] == "全量"
    assert rows(calibration, "stats__item") == {"总数": "4", "已找到": "1", "qBittorrent 中没有": "1", "已超时": "0",
                                                 "已停止且无元数据": "1", "被拒绝": "1", "等待元数据": "0"}
    # The page's JavaScript draws live updates with the same labels and values.
    with translation.override("en"):
        page = browser.get("/tasks/").content.decode()
    client = json.loads(re.search(r'<script id="mc-client" type="application/json">(.*?)</script>', page, re.S).group(1))
    assert client["strings"]["stat_values"]["sync_type"]["incremental"] == "增量"
    assert client["strings"]["stats"]["no_metadata"] == "已停止且无元数据"
