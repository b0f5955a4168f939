"""The task API over HTTP: submit, errors, list, ownership, cancel/retry/delete, CSRF, Bearer tokens."""

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from tasks.models import CommandTemplate, Task, TaskKind
from tests.conftest import submit_command, wait_for

S = Task.Status
TASKS = "/api/tasks/"
DESIGN_FIELDS = {
    "task_id", "kind", "title", "status", "stage", "progress", "message", "stats", "priority", "attempts",
    "max_attempts", "error", "result", "outputs", "created_at", "queued_at", "started_at", "finished_at",
}
INTERNAL_FIELDS = {"owner_id", "message_code", "message_params", "error_code", "error_params", "error_detail"}


def post_json(client, url, body, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", **extra)


def command_body(template="fake", **args):
    return {"kind": "command", "params": {"template": template, "args": args}}


def submit(client, **args):
    """POST a `fake` command task; keyword arguments are the tool's parameters."""
    return post_json(client, TASKS, command_body(**args))


def assert_error(response, status, code=None, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert error.get("field") == field, error
    return error


def set_status(task, status):
    Task.objects.filter(pk=task.pk).update(status=status)
    return Task.objects.get(pk=task.pk)


def task_url(task, action=""):
    task_id = task if isinstance(task, str) else task.pk
    return f"{TASKS}{task_id}/" + (f"{action}/" if action else "")


def csrf_token(client):
    """A browser's way to the token: any GET of the account sets the csrftoken cookie."""
    response = client.get("/api/account/")
    assert response.status_code == 200
    return client.cookies[django_settings.CSRF_COOKIE_NAME].value


def create_token(client, name="script"):
    response = post_json(client, "/api/account/tokens/", {"name": name})
    assert response.status_code == 201, response.content
    return response.json()


def bearer_client(raw):
    return Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {raw}"})


def make_tasks(owner, count, **args):
    """`count` pending tasks, created one minute apart (oldest first)."""
    tasks = [submit_command(owner, **args) for _ in range(count)]
    start = timezone.now() - timedelta(hours=1)
    for i, task in enumerate(tasks):
        Task.objects.filter(pk=task.pk).update(created_at=start + timedelta(minutes=i))
    return tasks


def open_template(name="open"):
    """A command template the admin opened to every visitor."""
    return CommandTemplate.objects.create(name=name, argv=["{python}", "-c", "print(1)"], allow_everyone=True)


@pytest.fixture
def strict_tool(db):
    """A template whose parameters exercise every validation rule."""
    return CommandTemplate.objects.create(
        name="strict",
        argv=["{python}", "-c", "print(1)"],
        param_schema=[
            {"name": "topic", "type": "string", "required": True, "pattern": "[a-z]+"},
            {"name": "count", "type": "integer", "min": 1, "max": 5},
            {"name": "ratio", "type": "number"},
            {"name": "loud", "type": "boolean"},
            {"name": "mode", "type": "string", "choices": ["fast", "slow"]},
        ],
    )


# --- submit ---------------------------------------------------------------------------------


def test_it_submits_json_and_answers_201_with_the_task(alice, tool, client_for):
    response = post_json(client_for(alice), TASKS, {**command_body(steps=2), "priority": 7, "title": "My run"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert DESIGN_FIELDS <= set(body)
    assert not INTERNAL_FIELDS & set(body)
    task = Task.objects.get()
    assert task.owner == alice
    assert body["task_id"] == str(task.pk)
    assert body["kind"] == "command"
    assert body["title"] == "My run"
    assert body["status"] == S.QUEUED  # admitted in the submit's own transaction
    assert body["priority"] == 7
    assert body["attempts"] == 0
    assert body["max_attempts"] == 1
    assert body["progress"] == 0
    assert body["error"] is None and body["result"] is None
    assert body["outputs"] == []
    assert isinstance(body["message"], str) and body["message"]
    assert body["created_at"] and body["finished_at"] is None
    assert task.params == {"template": "fake", "args": {"steps": 2}}


def test_it_defaults_the_title_priority_and_timeout(alice, tool, client_for):
    body = submit(client_for(alice), steps=1).json()
    assert body["title"] == "fake"
    assert body["priority"] == 5
    assert Task.objects.get().timeout == tool.default_timeout


def test_it_strips_control_characters_from_the_title(alice, tool, client_for):
    response = post_json(client_for(alice), TASKS, {**command_body(), "title": "  a\x00b\nc\u200b  "})
    assert response.status_code == 201, response.content
    assert response.json()["title"] == "abc"

def test_it_submits_multipart_with_params_as_a_json_string(alice, tool, client_for):
    response = client_for(alice).post(TASKS, {
        "kind": "command", "params": json.dumps({"template": "fake", "args": {"steps": "3"}}), "priority": "2",
    })
    assert response.status_code == 201, response.content
    assert response.json()["priority"] == 2
    assert Task.objects.get().params == {"template": "fake", "args": {"steps": 3}}


def test_it_refuses_files_for_a_command_task_naming_files(alice, tool, client_for):
    response = client_for(alice).post(TASKS, {
        "kind": "command", "params": json.dumps({"template": "fake", "args": {}}),
        "files": [SimpleUploadedFile("a.mp4", b"video")],
    })
    assert_error(response, 400, "invalid_params", "files")
    assert not Task.objects.exists()


def test_it_refuses_a_multipart_file_under_another_field_name(alice, tool, client_for):
    response = client_for(alice).post(TASKS, {
        "kind": "command", "params": json.dumps({"template": "fake"}), "upload": SimpleUploadedFile("a.mp4", b"v"),
    })
    assert_error(response, 400, "unknown_field", "upload")
    assert not Task.objects.exists()


def test_it_refuses_multipart_params_that_are_not_json(alice, tool, client_for):
    response = client_for(alice).post(TASKS, {"kind": "command", "params": "{not json"})
    assert_error(response, 400, "bad_json", "params")
    assert not Task.objects.exists()


# --- submit errors --------------------------------------------------------------------------

BAD_SUBMITS = {
    "unknown kind": ({"kind": "nope", "params": {}}, "unknown_kind", None),
    "kind not text": ({"kind": ["command"], "params": {}}, "unknown_kind", None),
    "missing kind": ({"params": {"template": "fake"}}, "invalid_params", "kind"),
    "params a list": ({"kind": "command", "params": [1]}, "invalid_params", "params"),
    "params a string": ({"kind": "command", "params": "template=fake"}, "invalid_params", "params"),
    "params null": ({"kind": "command", "params": None}, "invalid_params", "params"),
    "malformed json": ('{"kind": "command",', "bad_json", None),
    "invalid utf-8": (b'{"kind": "\xff"}', "bad_json", None),
    "empty body": ("", "bad_json", None),
    "body a list": ('[{"kind": "command"}]', "bad_json", None),
    "body a string": ('"command"', "bad_json", None),
    "unknown top-level field": ({**command_body(), "colour": "red"}, "unknown_field", "colour"),
    "priority 0": ({**command_body(), "priority": 0}, "invalid_params", "priority"),
    "priority 11": ({**command_body(), "priority": 11}, "invalid_params", "priority"),
    "priority negative": ({**command_body(), "priority": -1}, "invalid_params", "priority"),
    "priority text": ({**command_body(), "priority": "high"}, "invalid_params", "priority"),
    "priority boolean": ({**command_body(), "priority": True}, "invalid_params", "priority"),
    "priority float": ({**command_body(), "priority": 2.5}, "invalid_params", "priority"),
    "priority object": ({**command_body(), "priority": {"v": 1}}, "invalid_params", "priority"),
    "timeout 0": ({**command_body(), "timeout": 0}, "invalid_params", "timeout"),
    "timeout text": ({**command_body(), "timeout": "soon"}, "invalid_params", "timeout"),
    "title not text": ({**command_body(), "title": 5}, "invalid_params", "title"),
    "title too long": ({**command_body(), "title": "x" * 201}, "invalid_params", "title"),
    "unknown template": (command_body(template="nope"), "invalid_params", "template"),
    "template missing": ({"kind": "command", "params": {"args": {}}}, "invalid_params", "template"),
    "template with a NUL byte": (command_body(template="fa\x00ke"), "invalid_params", "template"),
    "args not an object": ({"kind": "command", "params": {"template": "fake", "args": [1]}}, "invalid_params", "args"),
    "unknown parameter": (command_body(colour="red"), "invalid_params", "args.colour"),
}


@pytest.mark.parametrize("body,code,field", BAD_SUBMITS.values(), ids=BAD_SUBMITS.keys())
def test_it_answers_bad_submits_with_a_400_error_and_no_task(alice, tool, client_for, body, code, field):
    response = post_json(client_for(alice), TASKS, body)
    assert_error(response, 400, code, field)
    assert not Task.objects.exists()


BAD_PARAMS = {
    "missing required": ({"count": 2}, "args.topic"),
    "empty required": ({"topic": ""}, "args.topic"),
    "pattern mismatch": ({"topic": "ABC"}, "args.topic"),
    "pattern is anchored": ({"topic": "abc1"}, "args.topic"),
    "NUL byte": ({"topic": "ab\x00c"}, "args.topic"),
    "string given a list": ({"topic": ["abc"]}, "args.topic"),
    "string given a boolean": ({"topic": True}, "args.topic"),
    "integer given text": ({"topic": "abc", "count": "many"}, "args.count"),
    "integer given a float": ({"topic": "abc", "count": 1.5}, "args.count"),
    "integer given a boolean": ({"topic": "abc", "count": True}, "args.count"),
    "integer above max": ({"topic": "abc", "count": 6}, "args.count"),
    "integer below min": ({"topic": "abc", "count": 0}, "args.count"),
    "number given text": ({"topic": "abc", "ratio": "half"}, "args.ratio"),
    "number not finite": ({"topic": "abc", "ratio": "nan"}, "args.ratio"),
    "boolean given text": ({"topic": "abc", "loud": "maybe"}, "args.loud"),
    "boolean given a number": ({"topic": "abc", "loud": 2}, "args.loud"),
    "not one of the choices": ({"topic": "abc", "mode": "medium"}, "args.mode"),
}


@pytest.mark.parametrize("args,field", BAD_PARAMS.values(), ids=BAD_PARAMS.keys())
def test_it_refuses_bad_template_parameters_naming_the_field(alice, strict_tool, client_for, args, field):
    response = post_json(client_for(alice), TASKS, command_body(template="strict", **args))
    assert_error(response, 400, "invalid_params", field)
    assert not Task.objects.exists()


def test_it_coerces_valid_template_parameters(alice, strict_tool, client_for):
    response = post_json(client_for(alice), TASKS, command_body(
        template="strict", topic="abc", count="3", ratio="0.5", loud="yes", mode="slow"))
    assert response.status_code == 201, response.content
    assert Task.objects.get().params["args"] == {"topic": "abc", "count": 3, "ratio": 0.5, "loud": True, "mode": "slow"}


def test_it_caps_the_timeout_at_the_site_maximum(alice, tool, client_for, settings):
    settings.MEDIACRAFT_MAX_TASK_TIMEOUT = 60
    client = client_for(alice)
    assert_error(post_json(client, TASKS, {**command_body(), "timeout": 61}), 400, "invalid_params", "timeout")
    assert not Task.objects.exists()
    assert post_json(client, TASKS, {**command_body(), "timeout": 60}).status_code == 201
    # Without an explicit timeout, the template's default (120 s) is lowered to the maximum.
    assert submit(client).status_code == 201
    assert sorted(Task.objects.values_list("timeout", flat=True)) == [60, 60]


def test_it_answers_413_for_a_json_body_over_the_upload_limit(alice, tool, client_for, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    response = submit(client_for(alice), echo="x" * 4000)
    assert_error(response, 413, "too_large")
    assert not Task.objects.exists()


def test_it_answers_413_for_a_multipart_field_over_the_upload_limit(alice, tool, client_for, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    params = json.dumps({"template": "fake", "args": {"echo": "x" * 4000}})
    assert_error(client_for(alice).post(TASKS, {"kind": "command", "params": params}), 413, "too_large")
    assert not Task.objects.exists()


def test_it_answers_429_above_the_per_user_pending_cap(alice, bob, tool, client_for, settings):
    settings.MEDIACRAFT_USER_MAX_PENDING = 2
    client = client_for(alice)
    # One is admitted (the per-user limit is 1), two wait: the cap counts those.
    assert [submit(client).json()["status"] for _ in range(3)] == [S.QUEUED, S.PENDING, S.PENDING]
    assert_error(submit(client), 429, "too_many_pending")
    assert Task.objects.filter(owner=alice).count() == 3
    assert submit(client_for(bob)).status_code == 201  # the cap is per user


def test_it_refuses_an_operator_kind_to_a_non_operator_with_403(charlie, tool, client_for):
    assert_error(submit(client_for(charlie)), 403, "forbidden_kind")
    assert not Task.objects.exists()


def test_it_refuses_an_operator_kind_to_an_anonymous_visitor_with_403(tool):
    assert_error(submit(Client()), 403, "forbidden_kind")
    assert not Task.objects.exists()


def test_it_lets_anyone_run_a_template_opened_to_everyone(charlie, tool, client_for):
    open_template()
    body = {"kind": "command", "params": {"template": "open"}}
    assert post_json(client_for(charlie), TASKS, body).status_code == 201
    assert post_json(Client(), TASKS, body).status_code == 201
    assert_error(submit(client_for(charlie)), 403, "forbidden_kind")  # "fake" stays operator-only
    assert Task.objects.count() == 2


@pytest.mark.parametrize("name", ["op\x00en", "x" * 61, 7, ["open"]])
def test_a_non_operator_naming_no_possible_template_is_refused_not_failed(charlie, tool, client_for, name):
    """Whether a template is open to everyone is asked before validation: a name no template can
    have (PostgreSQL refuses NUL in a comparison) must get the 403, never a 500."""
    open_template()
    body = {"kind": "command", "params": {"template": name}}
    assert_error(post_json(client_for(charlie), TASKS, body), 403, "forbidden_kind")
    assert not Task.objects.exists()

def test_it_translates_error_messages_into_chinese(alice, client_for):
    catalogue = Path(django_settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.mo"
    if not catalogue.exists():
        pytest.skip("no zh_Hans catalogue yet (locale/zh_Hans/LC_MESSAGES/django.mo is produced separately)")
    client = client_for(alice)
    body = {"kind": "nope", "params": {}}
    english = assert_error(post_json(client, TASKS, body, HTTP_ACCEPT_LANGUAGE="en"), 400, "unknown_kind")
    chinese = assert_error(post_json(client, TASKS, body, HTTP_ACCEPT_LANGUAGE="zh-hans"), 400, "unknown_kind")
    assert chinese["message"] != english["message"]
    assert "nope" in chinese["message"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese["message"])
    assert all(not "\u4e00" <= ch <= "\u9fff" for ch in english["message"])


# --- list -----------------------------------------------------------------------------------


def test_it_lists_my_tasks_newest_first(alice, bob, tool, client_for):
    mine = make_tasks(alice, 3)
    make_tasks(bob, 2)
    response = client_for(alice).get(TASKS)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "count", "page", "pages"}
    assert body["count"] == 3 and body["page"] == 1 and body["pages"] == 1
    assert [t["task_id"] for t in body["items"]] == [str(t.pk) for t in reversed(mine)]
    assert all(DESIGN_FIELDS <= set(t) for t in body["items"])


def test_it_filters_the_list_by_status_and_kind(alice, tool, client_for):
    first, second, third = make_tasks(alice, 3)
    set_status(first, S.FAILED)
    set_status(third, S.FAILED)
    client = client_for(alice)
    failed = client.get(TASKS, {"status": "failed"}).json()
    assert failed["count"] == 2
    assert [t["task_id"] for t in failed["items"]] == [str(third.pk), str(first.pk)]
    assert [t["task_id"] for t in client.get(TASKS, {"status": "pending"}).json()["items"]] == [str(second.pk)]
    assert client.get(TASKS, {"kind": "command"}).json()["count"] == 3
    assert client.get(TASKS, {"kind": "watermark"}).json() == {"items": [], "count": 0, "page": 1, "pages": 1}
    assert client.get(TASKS, {"kind": "command", "status": "completed"}).json()["count"] == 0


def titled(owner, *titles):
    return [submit_command(owner, title=title) for title in titles]


def test_it_searches_the_titles_in_any_case_and_takes_wildcards_literally(alice, bob, tool, client_for):
    nightly, backup, weekly, percent, plain = titled(alice, "Nightly Export", "nightly backup", "Weekly export",
                                                     "100% done", "100 done")
    titled(bob, "nightly bob")
    set_status(backup, S.FAILED)
    client = client_for(alice)

    def found(**query):
        return {t["task_id"] for t in client.get(TASKS, query).json()["items"]}

    assert found(q="export") == {str(nightly.pk), str(weekly.pk)}
    assert found(q="  NIGHTLY ") == {str(nightly.pk), str(backup.pk)}
    assert found(q="nightly", status="failed") == {str(backup.pk)}
    assert found(q="%") == {str(percent.pk)}
    assert found(q="0_d") == set()
    assert client.get(TASKS, {"q": "nothing like it"}).json()["count"] == 0


def test_it_searches_past_case_and_width_in_any_script(alice, tool, client_for):
    # Full-width letters and digits, as Chinese input methods type them; accented capitals.
    summer, cafe = titled(alice, "Ｓｕｍｍｅｒ ２０２４ 夏天", "ÉCOLE Café")
    client = client_for(alice)

    def found(q):
        return {t["task_id"] for t in client.get(TASKS, {"q": q}).json()["items"]}

    assert found("summer 2024") == found("夏天") == found("ＳＵＭＭＥＲ") == {str(summer.pk)}
    assert found("école café") == found("CAFÉ") == {str(cafe.pk)}
    assert found("cafe") == set()  # an accent is a different letter, not a case


def test_a_migrated_database_finds_its_old_titles(transactional_db, alice, tool, client_for):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    (old,) = titled(alice, "Ａrchive ÉTÉ")
    Task.objects.filter(pk=old.pk).update(search_title="")  # as the rows were before 0004
    executor = MigrationExecutor(connection)
    executor.migrate([("tasks", "0003_countdown_translations")])
    executor.loader.build_graph()
    executor.migrate([("tasks", "0004_task_search_title")])
    assert Task.objects.get(pk=old.pk).search_title == "archive été"
    assert client_for(alice).get(TASKS, {"q": "archive été"}).json()["count"] == 1


def test_it_paginates_the_list(alice, tool, client_for):
    tasks = [str(t.pk) for t in reversed(make_tasks(alice, 5))]
    client = client_for(alice)
    pages = [client.get(TASKS, {"page": n, "page_size": 2}).json() for n in (1, 2, 3)]
    assert [p["page"] for p in pages] == [1, 2, 3]
    assert all(p["count"] == 5 and p["pages"] == 3 for p in pages)
    assert [t["task_id"] for p in pages for t in p["items"]] == tasks
    beyond = client.get(TASKS, {"page": 4, "page_size": 2}).json()
    assert beyond["items"] == [] and beyond["count"] == 5


BAD_LIST_QUERIES = {
    "unknown status": ({"status": "done"}, "invalid_status"),
    "unknown kind": ({"kind": "nope"}, "unknown_kind"),
    "page_size 0": ({"page_size": 0}, "invalid_page"),
    "page_size 101": ({"page_size": 101}, "invalid_page"),
    "page 0": ({"page": 0}, "invalid_page"),
    "page not a number": ({"page": "two"}, "invalid"),
    "page_size not a number": ({"page_size": "lots"}, "invalid"),
    "search text too long": ({"q": "x" * 201}, "invalid_search"),
    "search text with a NUL byte": ({"q": "a\x00b"}, "invalid_search"),
    "search text with a control character": ({"q": "a\tb"}, "invalid_search"),
}


@pytest.mark.parametrize("query,code", BAD_LIST_QUERIES.values(), ids=BAD_LIST_QUERIES.keys())
def test_it_answers_bad_list_queries_with_400(alice, client_for, query, code):
    assert_error(client_for(alice).get(TASKS, query), 400, code)


def test_it_answers_a_page_far_beyond_the_end_without_crashing(alice, tool, client_for):
    make_tasks(alice, 1)
    response = client_for(alice).get(TASKS, {"page": 10**19, "page_size": 100})
    assert response.status_code in (200, 400), response.content
    if response.status_code == 200:
        assert response.json()["items"] == []
    else:
        assert_error(response, 400, "invalid_page")


def test_it_shows_an_anonymous_client_an_empty_list_and_creates_no_user(alice, tool):
    make_tasks(alice, 2)
    users = get_user_model().objects.count()
    client = Client()
    response = client.get(TASKS)
    assert response.status_code == 200
    assert response.json() == {"items": [], "count": 0, "page": 1, "pages": 1}
    assert get_user_model().objects.count() == users
    assert django_settings.SESSION_COOKIE_NAME not in response.cookies


# --- ownership ------------------------------------------------------------------------------

ACTIONS = {
    "get": lambda client, task: client.get(task_url(task)),
    "cancel": lambda client, task: client.post(task_url(task, "cancel")),
    "retry": lambda client, task: client.post(task_url(task, "retry")),
    "delete": lambda client, task: client.delete(task_url(task)),
}


def alices_task(alice, action):
    task = submit_command(alice, echo="secret-of-alice", title="alice private title")
    if action in ("retry", "delete"):
        task = set_status(task, S.FAILED)  # a state in which the action would succeed for alice
    return task


@pytest.mark.parametrize("action", ACTIONS)
def test_it_hides_someone_elses_task_behind_a_404(alice, bob, tool, client_for, action):
    task = alices_task(alice, action)
    response = ACTIONS[action](client_for(bob), task)
    error = assert_error(response, 404, "not_found")
    assert str(task.pk) not in response.content.decode()
    assert "alice" not in response.content.decode()
    assert set(error) <= {"code", "message"}
    assert Task.objects.get(pk=task.pk).status == task.status


@pytest.mark.parametrize("action", ACTIONS)
def test_it_answers_404_to_an_anonymous_client(alice, tool, action):
    task = alices_task(alice, action)
    response = ACTIONS[action](Client(), task)
    assert_error(response, 404, "not_found")
    assert str(task.pk) not in response.content.decode()
    assert Task.objects.get(pk=task.pk).status == task.status


@pytest.mark.parametrize("task_id", ["not-a-uuid", "123", "x" * 300, str(uuid.uuid4()), "%20"])
@pytest.mark.parametrize("action", ACTIONS)
def test_it_answers_404_for_malformed_or_unknown_ids(alice, client_for, task_id, action):
    assert_error(ACTIONS[action](client_for(alice), task_id), 404, "not_found")


@pytest.mark.parametrize("method,url", [("put", TASKS), ("patch", TASKS + "{id}/"), ("get", TASKS + "{id}/cancel/")])
def test_it_answers_a_wrong_method_with_a_json_405(alice, tool, client_for, method, url):
    task = submit_command(alice)
    response = getattr(client_for(alice), method)(url.format(id=task.pk))
    assert response["Content-Type"].startswith("application/json"), response.content
    assert_error(response, 405)
    assert Task.objects.get(pk=task.pk).status == S.QUEUED

# --- cancel, cancel-all, retry, delete --------------------------------------------------------


@pytest.mark.parametrize("status", [S.PENDING, S.QUEUED, S.RETRYING])
def test_it_cancels_a_waiting_task(alice, tool, client_for, status):
    task = set_status(submit_command(alice), status)
    response = client_for(alice).post(task_url(task, "cancel"))
    assert response.status_code == 200, response.content
    assert response.json()["task_id"] == str(task.pk)
    assert response.json()["status"] == S.CANCELLED
    assert response.json()["finished_at"]
    assert Task.objects.get(pk=task.pk).status == S.CANCELLED


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_a_task_deleted_while_it_is_cancelled_or_retried_is_a_404(alice, tool, client_for, monkeypatch, action):
    """A delete from another request that lands between the move and its answer (a race the audit hit)."""
    from tasks import services

    move = services._transition

    def move_then_delete(task_id, **kwargs):
        moved = move(task_id, **kwargs)
        Task.objects.filter(pk=task_id).delete()
        return moved

    monkeypatch.setattr(services, "_transition", move_then_delete)
    client = client_for(alice)
    for url in (lambda task: task_url(task, action), lambda task: f"/tasks/{task.pk}/{action}/"):  # API, page
        task = set_status(submit_command(alice), S.PENDING if action == "cancel" else S.FAILED)
        response = client.post(url(task))
        assert response.status_code == 404, response.content


@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED, S.CANCELLED, S.TIMEOUT])
def test_it_refuses_to_cancel_a_finished_task_with_409(alice, tool, client_for, status):
    task = set_status(submit_command(alice), status)
    assert_error(client_for(alice).post(task_url(task, "cancel")), 409, "not_cancellable")
    assert Task.objects.get(pk=task.pk).status == status


def test_it_cancels_all_my_unfinished_tasks_and_only_mine(alice, bob, tool, client_for):
    pending, queued, done = make_tasks(alice, 3)
    set_status(queued, S.QUEUED)
    set_status(done, S.COMPLETED)
    (bobs,) = make_tasks(bob, 1)
    response = client_for(alice).post(f"{TASKS}cancel-all/")
    assert response.status_code == 200, response.content
    assert response.json() == {"cancelled": 2}
    statuses = dict(Task.objects.values_list("pk", "status"))
    assert statuses == {pending.pk: S.CANCELLED, queued.pk: S.CANCELLED, done.pk: S.COMPLETED, bobs.pk: S.QUEUED}
    assert client_for(alice).post(f"{TASKS}cancel-all/").json() == {"cancelled": 0}


def other_kind_task(owner, status):
    """A task of another kind than command, stored directly in this status."""
    return Task.objects.create(owner=owner, kind=TaskKind.DOWNLOAD, params={"urls": ["http://example.com/a"]},
                               status=status, timeout=60)


def output_on_disk(task):
    """A result file of the task: its row and its file under the task's folder."""
    from storage import services as storage
    from tasks.runtime import task_work_dir

    out = task_work_dir(task.pk) / "output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.txt").write_text("result")
    return storage.file_register_output(task=task, path=out / "result.txt", name="result.txt")


def test_it_deletes_all_my_finished_tasks_with_their_files_and_nothing_else(
        alice, bob, tool, client_for, django_capture_on_commit_callbacks):
    from storage.models import StoredFile
    from tasks.runtime import task_work_dir

    completed, failed, cancelled, timed_out, pending, running = make_tasks(alice, 6)
    for task, status in ((completed, S.COMPLETED), (failed, S.FAILED), (cancelled, S.CANCELLED),
                         (timed_out, S.TIMEOUT), (pending, S.PENDING), (running, S.RUNNING)):
        set_status(task, status)
    result = output_on_disk(completed)
    (bobs,) = make_tasks(bob, 1)
    set_status(bobs, S.COMPLETED)
    bobs_result = output_on_disk(bobs)
    client = client_for(alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{TASKS}delete-finished/")
    assert response.status_code == 200, response.content
    assert response.json() == {"deleted": 4}
    assert set(Task.objects.values_list("pk", flat=True)) == {pending.pk, running.pk, bobs.pk}
    assert not StoredFile.objects.filter(pk=result.pk).exists() and not result.abs_path.exists()
    assert not task_work_dir(completed.pk).exists()
    assert StoredFile.objects.filter(pk=bobs_result.pk).exists() and bobs_result.abs_path.exists()
    assert_error(client.get(task_url(completed)), 404, "not_found")
    assert client.post(f"{TASKS}delete-finished/").json() == {"deleted": 0}


@pytest.mark.parametrize("action, answer, kept_status, taken_status", [
    ("cancel-all", "cancelled", S.PENDING, S.QUEUED),
    ("delete-finished", "deleted", S.COMPLETED, S.FAILED),
])
def test_a_bulk_action_takes_only_one_kind_or_one_status_when_asked(alice, tool, client_for, action, answer,
                                                                      kept_status, taken_status):
    kept, taken = make_tasks(alice, 2)
    set_status(kept, kept_status)
    set_status(taken, taken_status)
    download = other_kind_task(alice, kept_status)
    client = client_for(alice)
    assert client.post(f"{TASKS}{action}/?kind=download").json() == {answer: 1}
    assert client.post(f"{TASKS}{action}/?status={taken_status}").json() == {answer: 1}
    taken_now = {S.CANCELLED} if action == "cancel-all" else set()  # cancelled, or gone
    assert dict(Task.objects.values_list("pk", "status")) == {
        kept.pk: kept_status, **{t.pk: status for t in (taken, download) for status in taken_now}}


@pytest.mark.parametrize("url, code, names", [
    ("delete-finished/?status=running", "invalid_status", "Running"),
    ("delete-finished/?status=pending", "invalid_status", "Pending"),
    ("cancel-all/?status=completed", "invalid_status", "Completed"),
    ("cancel-all/?status=done", "invalid_status", "done"),
    ("delete-finished/?status=finished", "invalid_status", "finished"),
    ("delete-finished/?kind=transcode", "unknown_kind", "transcode"),
    ("cancel-all/?kind=transcode&status=pending", "unknown_kind", "transcode"),
])
def test_it_refuses_a_bulk_filter_that_names_nothing_or_the_wrong_tasks(alice, tool, client_for, url, code, names):
    """Never a fallback to all tasks: a filter that cannot apply is a 400 naming it, and nothing changes."""
    tasks = make_tasks(alice, 4)
    for task, status in zip(tasks, (S.COMPLETED, S.FAILED, S.RUNNING)):
        set_status(task, status)
    before = dict(Task.objects.values_list("pk", "status"))
    error = assert_error(client_for(alice).post(TASKS + url), 400, code, field=code == "unknown_kind" and "kind" or "status")
    assert names in error["message"]
    assert dict(Task.objects.values_list("pk", "status")) == before


def test_a_bulk_action_takes_only_the_tasks_whose_title_has_the_search_text(alice, tool, client_for):
    nightly, weekly, running = titled(alice, "Nightly export", "Weekly export", "nightly run")
    set_status(nightly, S.COMPLETED)
    set_status(weekly, S.COMPLETED)
    set_status(running, S.RUNNING)
    client = client_for(alice)
    assert client.post(f"{TASKS}delete-finished/?q=NIGHTLY").json() == {"deleted": 1}
    assert set(Task.objects.values_list("pk", flat=True)) == {weekly.pk, running.pk}
    assert client.post(f"{TASKS}cancel-all/?q=weekly").json() == {"cancelled": 0}
    assert_error(client.post(f"{TASKS}delete-finished/?q=" + "x" * 201), 400, "invalid_search", field="q")
    assert Task.objects.count() == 2


def test_it_tells_a_wrong_bulk_filter_in_chinese(alice, tool, client_for):
    error = assert_error(client_for(alice).post(f"{TASKS}delete-finished/?status=running",
                                                headers={"Accept-Language": "zh-hans"}), 400, "invalid_status")
    assert error["message"] == "只能删除已结束的任务；“运行中”的任务尚未结束。"


@pytest.mark.parametrize("status", [S.FAILED, S.CANCELLED, S.TIMEOUT])
def test_it_retries_a_failed_cancelled_or_timed_out_task(alice, tool, client_for, status):
    task = submit_command(alice)
    Task.objects.filter(pk=task.pk).update(status=status, attempts=1, error_code="command_failed",
                                           error_params={"exit_code": 1})
    response = client_for(alice).post(task_url(task, "retry"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["task_id"] == str(task.pk)
    assert body["status"] == S.PENDING
    assert body["error"] is None and body["attempts"] == 0 and body["finished_at"] is None


def test_it_asks_a_running_task_to_stop_on_cancel(alice, tool, client_for):
    task = set_status(submit_command(alice), S.RUNNING)
    response = client_for(alice).post(task_url(task, "cancel"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == S.RUNNING  # the worker's stop callback finishes the job
    assert Task.objects.get(pk=task.pk).cancel_requested_at is not None


def test_it_answers_429_to_a_retry_above_the_pending_cap(alice, tool, client_for, settings):
    settings.MEDIACRAFT_USER_MAX_PENDING = 1
    failed = set_status(submit_command(alice), S.FAILED)
    submit_command(alice)  # admitted
    submit_command(alice)  # waits behind it: the cap is reached
    assert_error(client_for(alice).post(task_url(failed, "retry")), 429, "too_many_pending")
    assert Task.objects.get(pk=failed.pk).status == S.FAILED


def test_it_refuses_a_retry_once_the_template_is_closed_to_the_user(charlie, client_for):
    template = open_template()
    client = client_for(charlie)
    task_id = post_json(client, TASKS, {"kind": "command", "params": {"template": "open"}}).json()["task_id"]
    Task.objects.filter(pk=task_id).update(status=S.FAILED)
    CommandTemplate.objects.filter(pk=template.pk).update(allow_everyone=False)
    assert_error(client.post(task_url(task_id, "retry")), 403, "forbidden_kind")
    assert Task.objects.get(pk=task_id).status == S.FAILED

@pytest.mark.parametrize("status", [S.PENDING, S.QUEUED, S.RUNNING, S.RETRYING, S.COMPLETED])
def test_it_refuses_to_retry_other_states_with_409(alice, tool, client_for, status):
    task = set_status(submit_command(alice), status)
    assert_error(client_for(alice).post(task_url(task, "retry")), 409, "not_retryable")
    assert Task.objects.get(pk=task.pk).status == status


@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED, S.CANCELLED, S.TIMEOUT])
def test_it_deletes_a_finished_task_with_204(alice, tool, client_for, status):
    task = set_status(submit_command(alice), status)
    client = client_for(alice)
    response = client.delete(task_url(task))
    assert response.status_code == 204
    assert response.content == b""
    assert not Task.objects.filter(pk=task.pk).exists()
    assert_error(client.get(task_url(task)), 404, "not_found")


@pytest.mark.parametrize("status", [S.PENDING, S.QUEUED, S.RUNNING, S.RETRYING])
def test_it_refuses_to_delete_an_unfinished_task_with_409(alice, tool, client_for, status):
    task = set_status(submit_command(alice), status)
    assert_error(client_for(alice).delete(task_url(task)), 409, "not_deletable")
    assert Task.objects.filter(pk=task.pk).exists()


def test_it_gets_one_of_my_tasks(alice, tool, client_for):
    task = submit_command(alice, steps=2)
    response = client_for(alice).get(task_url(task))
    assert response.status_code == 200
    body = response.json()
    assert DESIGN_FIELDS <= set(body)
    assert body["task_id"] == str(task.pk) and body["status"] == S.QUEUED


# --- CSRF -------------------------------------------------------------------------------------


def test_it_refuses_a_cookie_session_write_without_the_csrf_token(alice, tool, client_for):
    client = client_for(alice, enforce_csrf_checks=True)
    assert_error(submit(client), 403, "csrf_failed")
    csrf_token(client)  # even with the cookie, the header is required
    assert_error(submit(client), 403, "csrf_failed")
    assert not Task.objects.exists()


@pytest.mark.parametrize("url", ["cancel-all/", "{id}/cancel/", "{id}/retry/"])
def test_it_csrf_checks_every_cookie_session_write(alice, tool, client_for, url):
    task = set_status(submit_command(alice), S.FAILED)
    client = client_for(alice, enforce_csrf_checks=True)
    assert_error(client.post(TASKS + url.format(id=task.pk)), 403, "csrf_failed")
    assert_error(client.delete(task_url(task)), 403, "csrf_failed")
    assert Task.objects.get(pk=task.pk).status == S.FAILED


def test_it_accepts_a_cookie_session_write_with_the_csrf_cookie_and_header(alice, tool, client_for):
    client = client_for(alice, enforce_csrf_checks=True)
    token = csrf_token(client)
    response = post_json(client, TASKS, command_body(), headers={"X-CSRFToken": token})
    assert response.status_code == 201, response.content
    assert Task.objects.get().owner == alice


# --- Bearer tokens ------------------------------------------------------------------------------


def test_it_shows_a_new_token_once_and_stores_only_its_digest(alice, client_for):
    from users.models import ApiToken

    client = client_for(alice)
    created = create_token(client, "ci")
    raw = created["token"]
    assert raw.startswith("mc_") and len(raw) > 30
    assert created["name"] == "ci" and created["prefix"] == raw[:10]
    stored = ApiToken.objects.get()
    assert stored.user == alice and stored.digest != raw and raw not in stored.digest
    account = client.get("/api/account/")
    assert [t["id"] for t in account.json()["tokens"]] == [created["id"]]
    assert raw not in account.content.decode()


def test_it_accepts_a_bearer_token_for_submit_and_list_without_csrf(alice, tool, client_for):
    raw = create_token(client_for(alice))["token"]
    client = bearer_client(raw)
    response = submit(client, steps=1)
    assert response.status_code == 201, response.content
    assert Task.objects.get().owner == alice
    listed = client.get(TASKS).json()
    assert [t["task_id"] for t in listed["items"]] == [response.json()["task_id"]]
    assert client.post(task_url(response.json()["task_id"], "cancel")).json()["status"] == S.CANCELLED


@pytest.mark.parametrize("header", ["Bearer mc_wrong", "Bearer ", "Basic YWxpY2U6cGFzcw==", "mc_notascheme"])
def test_it_answers_401_for_a_wrong_or_malformed_token(alice, tool, client_for, header):
    create_token(client_for(alice))
    client = Client(headers={"Authorization": header})
    assert_error(client.get(TASKS), 401, "invalid_token")
    assert_error(submit(client), 401, "invalid_token")
    assert not Task.objects.exists()


def test_it_answers_401_for_a_token_even_with_a_valid_session(alice, tool, client_for):
    client = client_for(alice, headers={"Authorization": "Bearer mc_wrong"})
    assert_error(client.get(TASKS), 401, "invalid_token")


def test_it_answers_401_for_a_revoked_token(alice, tool, client_for):
    session = client_for(alice)
    created = create_token(session)
    client = bearer_client(created["token"])
    assert client.get(TASKS).status_code == 200
    assert session.delete(f"/api/account/tokens/{created['id']}/").status_code == 204
    assert_error(client.get(TASKS), 401, "invalid_token")
    assert_error(submit(client), 401, "invalid_token")


def test_it_answers_401_for_the_token_of_a_deactivated_user(alice, tool, client_for):
    raw = create_token(client_for(alice))["token"]
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    assert_error(bearer_client(raw).get(TASKS), 401, "invalid_token")


def test_it_never_shows_bob_tasks_to_alices_token(alice, bob, tool, client_for):
    (bobs,) = make_tasks(bob, 1)
    (alices,) = make_tasks(alice, 1)
    client = bearer_client(create_token(client_for(alice))["token"])
    assert [t["task_id"] for t in client.get(TASKS).json()["items"]] == [str(alices.pk)]
    assert_error(client.get(task_url(bobs)), 404, "not_found")
    assert_error(client.post(task_url(bobs, "cancel")), 404, "not_found")
    assert client.post(f"{TASKS}cancel-all/").json() == {"cancelled": 1}
    assert Task.objects.get(pk=bobs.pk).status == S.QUEUED


def test_it_refuses_to_create_a_token_with_a_token(alice, client_for):
    from users.models import ApiToken

    raw = create_token(client_for(alice))["token"]
    response = post_json(bearer_client(raw), "/api/account/tokens/", {"name": "more"})
    assert_error(response, 403, "session_required")
    assert ApiToken.objects.count() == 1


# --- documentation ------------------------------------------------------------------------------


def test_it_serves_the_api_docs_and_the_openapi_schema(db):
    client = Client()
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert docs["Content-Type"].startswith("text/html")
    schema = client.get("/api/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/tasks/", "/api/tasks/{task_id}/", "/api/tasks/{task_id}/cancel/",
                 "/api/tasks/{task_id}/retry/", "/api/tasks/cancel-all/"):
        assert path in paths, sorted(paths)
    assert {"get", "post"} <= set(paths["/api/tasks/"])
    assert {"get", "delete"} <= set(paths["/api/tasks/{task_id}/"])
    assert "multipart/form-data" in paths["/api/tasks/"]["post"]["requestBody"]["content"]


# --- end to end ------------------------------------------------------------------------------------


def test_it_runs_a_task_submitted_over_http_to_completion(workers, alice, tool, client_for):
    workers(1)
    client = client_for(alice)
    response = submit(client, steps=3, sleep=0.05, result='{"answer": 42}')
    assert response.status_code == 201, response.content
    url = task_url(response.json()["task_id"])

    def completed():
        body = client.get(url).json()
        return body if body["status"] in Task.TERMINAL else None

    body = wait_for(completed, 30, 0.1, message="the task to finish")
    assert body["status"] == S.COMPLETED, body
    assert body["result"] == {"answer": 42}
    assert body["progress"] == 100
    assert body["attempts"] == 1
    assert body["error"] is None
    assert body["queued_at"] and body["started_at"] and body["finished_at"]
    assert client.get(TASKS, {"status": "completed"}).json()["count"] == 1



@pytest.mark.parametrize("language", ["zh-hans", "en"])  # English last: requests leave their language active
def test_it_names_the_field_of_a_schema_error_in_the_viewers_language(alice, client_for, language):
    from mediacraft.api import _describe

    client = client_for(alice)
    expected = {
        "en": ("page must be a whole number.", "password is required.", "username must be text.",
               "title must be at most 5 characters long.", "flag must be true or false.", "size must be at least 1."),
        "zh-hans": ("page 必须是整数。", "必须填写 password。", "username 必须是文本。", "title 最多 5 个字符。",
                    "flag 必须是 true 或 false。", "size 至少为 1。"),
    }[language]
    error = assert_error(client.get(TASKS, {"page": "two"}, HTTP_ACCEPT_LANGUAGE=language), 400, "invalid")
    assert (error["message"], error["field"]) == (expected[0], "page")
    error = assert_error(post_json(client, "/api/account/login/", {"username": "alice"}, HTTP_ACCEPT_LANGUAGE=language),
                         400, "invalid")
    assert (error["message"], error["field"]) == (expected[1], "password")
    error = assert_error(post_json(client, "/api/account/login/", {"username": 5, "password": "x"},
                                   HTTP_ACCEPT_LANGUAGE=language), 400, "invalid")
    assert error["message"] == expected[2] and "Input should" not in error["message"]
    from django.utils import translation

    with translation.override(language):
        messages, field = _describe([
            {"type": "string_too_long", "loc": ("body", "payload", "title"), "msg": "String should have at most 5 characters",
             "ctx": {"max_length": 5}},
            {"type": "bool_parsing", "loc": ("query", "flag"), "msg": "Input should be a valid boolean"},
            {"type": "greater_than_equal", "loc": ("size",), "msg": "Input should be greater than or equal to 1",
             "ctx": {"ge": 1}},
        ])
    assert messages == list(expected[3:]) and field == "title"
