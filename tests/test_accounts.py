"""Visitors and accounts: the cookie identity, claiming, logging in and out, merging, API tokens."""

import json

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from tasks.models import CommandTemplate, Task
from tests.conftest import submit_command, wait_for
from users.models import ApiToken

ACCOUNT = "/api/account/"
TASKS = "/api/tasks/"
SESSION_COOKIE = django_settings.SESSION_COOKIE_NAME
CSRF_COOKIE = django_settings.CSRF_COOKIE_NAME
STRONG = "correct-horse-battery-staple"
User = get_user_model()


def post_json(client, url, body=None, **extra):
    return client.post(url, data=json.dumps(body or {}), content_type="application/json", **extra)


def first_write(client, **extra):
    """The cheapest write a new browser can make; it brings the visitor identity to life."""
    response = client.post(f"{TASKS}cancel-all/", **extra)
    assert response.status_code == 200, response.content
    assert response.json() == {"cancelled": 0}
    return response


def session_user(client):
    return User.objects.get(pk=client.session[SESSION_KEY])


def make_operator(user):
    user.user_permissions.add(Permission.objects.get(codename="run_operator_tasks"))
    return User.objects.get(pk=user.pk)  # a fresh object: the permission cache is per instance


def new_visitor_with_tasks(count, tool):
    """A browser whose visitor owns `count` tasks; returns (client, visitor, tasks)."""
    client = Client()
    first_write(client)
    visitor = make_operator(session_user(client))
    return client, visitor, [submit_command(visitor, steps=i) for i in range(count)]


def task_ids(client):
    response = client.get(TASKS)
    assert response.status_code == 200, response.content
    return {t["task_id"] for t in response.json()["items"]}


def account(client):
    response = client.get(ACCOUNT)
    assert response.status_code == 200, response.content
    return response.json()


def claim(client, username, password=STRONG):
    return post_json(client, f"{ACCOUNT}claim/", {"username": username, "password": password})


def login(client, username, password, **extra):
    return post_json(client, f"{ACCOUNT}login/", {"username": username, "password": password}, **extra)


def create_token(client, name=""):
    response = post_json(client, f"{ACCOUNT}tokens/", {"name": name})
    assert response.status_code == 201, response.content
    return response.json()


def open_template(name="open"):
    """A command template the admin opened to every visitor."""
    return CommandTemplate.objects.create(name=name, argv=["{python}", "-c", "print(1)"], allow_everyone=True)


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return error


# --- the visitor identity --------------------------------------------------------------------


def test_it_creates_exactly_one_visitor_with_an_unusable_password_on_the_first_write(db):
    client = Client()
    first_write(client)
    assert User.objects.count() == 1
    visitor = User.objects.get()
    assert not visitor.has_usable_password()
    assert visitor.username.startswith("visitor-")
    assert session_user(client) == visitor
    me = account(client)
    assert me["authenticated"] is True and me["claimed"] is False and me["username"] == visitor.username
    first_write(client)  # later writes reuse the identity
    assert User.objects.count() == 1


def test_it_creates_the_visitor_on_a_first_token_request(db):
    client = Client()
    created = create_token(client, "laptop")
    visitor = User.objects.get()
    assert not visitor.has_usable_password()
    assert ApiToken.objects.get(pk=created["id"]).user == visitor
    assert session_user(client) == visitor


def test_it_gives_the_visitor_a_30_day_httponly_lax_session_cookie(db):
    cookie = first_write(Client()).cookies[SESSION_COOKIE]
    assert cookie.value
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) == 30 * 24 * 3600 == 2592000
    assert not cookie["secure"]  # plain HTTP


def test_it_marks_the_session_cookie_secure_over_https(db):
    cookie = first_write(Client(), secure=True).cookies[SESSION_COOKIE]
    assert cookie.value
    assert cookie["secure"] is True


def test_it_marks_the_csrf_cookie_secure_over_https(db):
    cookie = Client().get(ACCOUNT, secure=True).cookies[CSRF_COOKIE]
    assert cookie.value
    assert cookie["secure"] is True


def test_it_creates_nobody_on_reads(alice, tool):
    (task,) = [submit_command(alice)]
    users = User.objects.count()
    client = Client()
    responses = [client.get(ACCOUNT), client.get(TASKS), client.get(f"{TASKS}{task.pk}/")]
    assert [r.status_code for r in responses] == [200, 200, 404]
    assert User.objects.count() == users
    assert all(SESSION_COOKIE not in r.cookies for r in responses)
    me = responses[0].json()
    assert me["authenticated"] is False and me["username"] is None and me["tokens"] == []


def test_it_shows_a_returning_visitor_the_same_tasks(tool):
    client, visitor, tasks = new_visitor_with_tasks(2, tool)
    returning = Client()
    returning.cookies[SESSION_COOKIE] = client.cookies[SESSION_COOKIE].value
    assert task_ids(returning) == {str(t.pk) for t in tasks}
    assert account(returning)["username"] == visitor.username
    assert task_ids(Client()) == set()  # another browser sees nothing


def test_it_lists_the_operator_kind_only_to_operators(alice, charlie, client_for):
    CommandTemplate.objects.update(allow_everyone=False)
    assert "command" in account(client_for(alice))["kinds"]
    assert "command" not in account(client_for(charlie))["kinds"]
    assert "command" not in account(Client())["kinds"]


def test_it_lists_the_command_kind_to_everyone_once_a_template_is_open(charlie, client_for):
    CommandTemplate.objects.update(allow_everyone=False)
    open_template()
    assert "command" in account(client_for(charlie))["kinds"]
    assert "command" in account(Client())["kinds"]  # an anonymous visitor may submit it too


def test_it_creates_the_visitor_on_a_first_submit_of_an_open_template(db):
    open_template()
    client = Client()
    response = post_json(client, TASKS, {"kind": "command", "params": {"template": "open"}})
    assert response.status_code == 201, response.content
    visitor = User.objects.get()
    assert not visitor.has_usable_password()
    assert Task.objects.get().owner == visitor
    assert task_ids(client) == {response.json()["task_id"]}


def refused_upload(client, where, tmp_path, token):
    """A non-video upload, refused with a 400 by the API's submit, its staging endpoint or the page."""
    bogus = tmp_path / "notes.txt"
    bogus.write_bytes(b"not a video at all")
    headers = {"X-CSRFToken": token}
    with open(bogus, "rb") as f:
        if where == "api-task":
            params = json.dumps({"rects": [{"x": 0, "y": 0, "w": 8, "h": 8}]})
            return client.post(TASKS, {"kind": "watermark", "params": params, "files": f}, headers=headers)
        if where == "api-file":
            return client.post("/api/files/", {"files": f}, headers=headers)
        return client.post("/new/watermark/", {"watermark-video": f, "watermark-rects": "0, 0, 8, 8",
                                               "watermark-method": "delogo", "watermark-edge": "clamp",
                                               "watermark-priority": "5"}, headers=headers)


@pytest.mark.parametrize("where", ["api-task", "api-file", "page"])
def test_it_leaves_no_visitor_behind_after_a_refused_upload(transactional_db, alice, where, tmp_path):
    from storage.models import StoredFile

    users = User.objects.count()
    client = Client(enforce_csrf_checks=True)
    token = account(client)["csrf_token"]
    response = refused_upload(client, where, tmp_path, token)
    assert response.status_code == 400, response.content[:2000]
    assert User.objects.count() == users
    assert StoredFile.objects.count() == 0
    assert SESSION_COOKIE not in response.cookies or not response.cookies[SESSION_COOKIE].value
    assert SESSION_KEY not in client.session
    # The token the page holds still works: the next try is not refused as a stale CSRF token.
    first_write(client, headers={"X-CSRFToken": token})
    assert User.objects.count() == users + 1


def new_visitor_video_submit(tmp_path, **fields):
    """A brand-new browser's first write: a watermark task with a real video, through the API."""
    from tests.media_helpers import make_video

    video = make_video(tmp_path / "clip.mp4", size="160x120", seconds=1)
    client = Client(enforce_csrf_checks=True)
    token = account(client)["csrf_token"]
    params = json.dumps({"rects": [{"x": 0, "y": 0, "w": 8, "h": 8}]})
    with open(video, "rb") as f:
        return client.post(TASKS, {"kind": "watermark", "params": params, "files": f, **fields},
                            headers={"X-CSRFToken": token})


def test_it_leaves_no_visitor_behind_after_a_number_too_long_to_read(transactional_db, tmp_path):
    """The upload makes the visitor first; a priority of 5000 digits then used to be a 500."""
    from storage.models import StoredFile

    response = new_visitor_video_submit(tmp_path, priority="9" * 5000)
    assert response.status_code == 400, response.content[:2000]
    assert response.json()["error"]["field"] == "priority"
    assert User.objects.count() == 0 and StoredFile.objects.count() == 0


def test_it_leaves_no_visitor_behind_after_a_server_error(transactional_db, tmp_path, monkeypatch):
    from storage.models import StoredFile
    from tasks import services

    def crash(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(services, "task_submit", crash)
    response = new_visitor_video_submit(tmp_path)
    assert response.status_code == 500, response.content[:2000]
    assert User.objects.count() == 0 and StoredFile.objects.count() == 0
    assert SESSION_COOKIE not in response.cookies or not response.cookies[SESSION_COOKIE].value


# --- claim -------------------------------------------------------------------------------------


def test_it_claims_a_visitor_account_and_keeps_its_tasks(tool):
    client, visitor, tasks = new_visitor_with_tasks(2, tool)
    response = claim(client, "dora")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["authenticated"] is True and body["claimed"] is True and body["username"] == "dora"
    user = User.objects.get(pk=visitor.pk)
    assert user.username == "dora" and user.check_password(STRONG)
    assert set(Task.objects.values_list("owner", flat=True)) == {visitor.pk}
    assert task_ids(client) == {str(t.pk) for t in tasks}

    elsewhere = Client()
    response = login(elsewhere, "dora", STRONG)
    assert response.status_code == 200, response.content
    assert response.json()["username"] == "dora"
    assert task_ids(elsewhere) == {str(t.pk) for t in tasks}


def test_it_claims_from_a_brand_new_browser(db):
    client = Client()
    assert claim(client, "newcomer").status_code == 200
    user = User.objects.get()
    assert user.username == "newcomer" and user.has_usable_password()
    assert account(client)["claimed"] is True


def test_it_gives_a_new_session_key_on_claim_and_login(alice, tool):
    client, _visitor, _tasks = new_visitor_with_tasks(1, tool)
    before = client.cookies[SESSION_COOKIE].value
    assert claim(client, "dora").status_code == 200
    after_claim = client.cookies[SESSION_COOKIE].value
    assert after_claim != before
    stale = Client()
    stale.cookies[SESSION_COOKIE] = before
    assert account(stale)["authenticated"] is False
    assert login(client, "alice", "alice-pass-123!").status_code == 200
    assert client.cookies[SESSION_COOKIE].value != after_claim

@pytest.mark.parametrize("username", ["alice", "ALICE"])
def test_it_refuses_a_taken_username_with_409(alice, username):
    client = Client()
    first_write(client)
    assert_error(claim(client, username), 409, "username_taken")
    assert not session_user(client).has_usable_password()
    assert User.objects.get(pk=alice.pk).check_password("alice-pass-123!")


@pytest.mark.parametrize("password", ["", "short1", "password123", "12345678901", "abc"])
def test_it_refuses_a_weak_password_with_400_and_a_message(db, password):
    client = Client()
    first_write(client)
    error = assert_error(claim(client, "dora", password), 400, "invalid_password")
    assert error["field"] == "password"
    assert "password" in error["message"].lower()
    visitor = session_user(client)
    assert visitor.username.startswith("visitor-") and not visitor.has_usable_password()


def test_it_refuses_a_password_that_is_the_username(db):
    client = Client()
    first_write(client)
    error = assert_error(claim(client, "marmaladesky", "marmaladesky"), 400, "invalid_password")
    assert "similar" in error["message"].lower()
    assert not session_user(client).has_usable_password()


@pytest.mark.parametrize("username", ["", "   ", "visitor-1234", "has space", "semi;colon", "x" * 151, None, 42])
def test_it_refuses_an_invalid_username_with_400(db, username):
    client = Client()
    first_write(client)
    response = claim(client, username)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in ("invalid_username", "invalid")
    assert not session_user(client).has_usable_password()


def test_claims_of_one_name_at_once_leave_one_account_and_409s(transactional_db, monkeypatch):
    """Each claim looks for the name before its slow password check; here all of them finish that
    check together (a barrier), as claims racing on a busy server do."""
    import threading

    from django.db import connections

    from users import services

    names = ["Dora", "dora", "DORA", "dOrA"]
    barrier = threading.Barrier(len(names), timeout=60)
    check = services.validate_password

    def check_then_wait(*args, **kwargs):
        check(*args, **kwargs)
        barrier.wait()

    monkeypatch.setattr(services, "validate_password", check_then_wait)
    browsers = [Client() for _ in names]
    for browser in browsers:
        first_write(browser)
    answers = []

    def claim_in_thread(browser, name):
        try:
            answers.append(claim(browser, name))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim_in_thread, args=pair) for pair in zip(browsers, names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409], [a.content for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"username_taken"}
    assert User.objects.filter(username__iexact="dora").count() == 1


def test_it_refuses_to_claim_twice_with_409(db):
    client = Client()
    assert claim(client, "dora").status_code == 200
    assert_error(claim(client, "dora2", STRONG + "!"), 409, "already_claimed")
    user = User.objects.get()
    assert user.username == "dora" and user.check_password(STRONG)


def test_it_refuses_a_claim_by_a_registered_user_with_409(alice, client_for):
    assert_error(claim(client_for(alice), "alice2"), 409, "already_claimed")
    assert User.objects.get(pk=alice.pk).username == "alice"


# --- log in, merge, log out ---------------------------------------------------------------------


def test_it_moves_a_visitors_tasks_to_the_account_they_log_in_to(alice, tool):
    own = submit_command(alice)
    client, visitor, tasks = new_visitor_with_tasks(2, tool)
    response = login(client, "alice", "alice-pass-123!")
    assert response.status_code == 200, response.content
    assert response.json()["username"] == "alice"
    assert not User.objects.filter(pk=visitor.pk).exists()
    assert set(Task.objects.values_list("owner", flat=True)) == {alice.pk}
    assert task_ids(client) == {str(t.pk) for t in [own, *tasks]}
    assert session_user(client) == alice


def visitor_files(visitor, task):
    """An upload attached to the task, a result of it and a staged upload: rows and files on disk."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from storage import services as storage
    from tasks.runtime import task_work_dir

    used = storage.file_store_upload(owner=visitor, upload=SimpleUploadedFile("in.txt", b"input"), video=False)
    storage.files_attach(task=task, file_ids=[used.pk])
    staged = storage.file_store_upload(owner=visitor, upload=SimpleUploadedFile("staged.txt", b"s"), video=False)
    out = task_work_dir(task.pk) / "output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.txt").write_text("result")
    result = storage.file_register_output(task=task, path=out / "result.txt", name="result.txt")
    return [used, staged, result]


def test_it_moves_a_visitors_files_to_the_account_and_keeps_them_on_disk(alice, tool,
                                                                        django_capture_on_commit_callbacks):
    from storage.models import StoredFile

    client, visitor, (task,) = new_visitor_with_tasks(1, tool)
    files = visitor_files(visitor, task)
    with django_capture_on_commit_callbacks(execute=True):
        assert login(client, "alice", "alice-pass-123!").status_code == 200
    assert not User.objects.filter(pk=visitor.pk).exists()
    for stored in files:
        assert StoredFile.objects.get(pk=stored.pk).owner_id == alice.pk
        assert stored.abs_path.read_bytes()
    assert b"".join(client.get(f"/api/files/{files[2].pk}/download/").streaming_content) == b"result"


def test_it_registers_a_running_tasks_later_outputs_under_the_account(alice, tool):
    from storage import services as storage
    from storage.models import StoredFile
    from tasks.runtime import task_work_dir

    client, visitor, (task,) = new_visitor_with_tasks(1, tool)  # `task`: the job's copy, loaded before the login
    assert login(client, "alice", "alice-pass-123!").status_code == 200
    out = task_work_dir(task.pk) / "output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "late.txt").write_text("late")
    stored = storage.file_register_output(task=task, path=out / "late.txt", name="late.txt")
    assert StoredFile.objects.get(pk=stored.pk).owner_id == alice.pk


def test_it_keeps_a_registered_users_tasks_when_they_log_in_as_someone_else(alice, bob, tool, client_for):
    bobs = submit_command(bob)
    client = client_for(bob)
    assert login(client, "alice", "alice-pass-123!").status_code == 200
    assert User.objects.filter(pk=bob.pk).exists()
    assert Task.objects.get(pk=bobs.pk).owner_id == bob.pk
    assert task_ids(client) == set()


def test_it_logs_out(alice, tool, client_for):
    submit_command(alice)
    client = client_for(alice)
    assert account(client)["authenticated"] is True
    response = client.post(f"{ACCOUNT}logout/")
    assert response.status_code == 204
    me = account(client)
    assert me["authenticated"] is False and me["username"] is None
    assert task_ids(client) == set()
    assert User.objects.filter(pk=alice.pk).exists()


def test_an_unclaimed_visitor_cannot_log_out_and_orphan_their_tasks(db, tool):
    client, visitor, tasks = new_visitor_with_tasks(1, tool)
    error = assert_error(client.post(f"{ACCOUNT}logout/"), 409, "unclaimed_visitor")
    assert "Claim your account with a password" in error["message"]
    assert account(client)["authenticated"] is True and session_user(client) == visitor
    assert task_ids(client) == {str(tasks[0].pk)}


@pytest.mark.parametrize("username,password", [("alice", "wrong-password"), ("nobody", "whatever-123"),
                                               ("ALICE", "alice-pass-123!"), ("alice", "")])
def test_it_refuses_a_wrong_login_with_401(alice, username, password):
    client = Client()
    assert_error(login(client, username, password), 401, "invalid_login")
    assert account(client)["authenticated"] is False


def test_it_keeps_the_visitor_when_a_login_fails(tool):
    client, visitor, tasks = new_visitor_with_tasks(1, tool)
    assert_error(login(client, "nobody", "whatever-123"), 401, "invalid_login")
    assert session_user(client) == visitor
    assert task_ids(client) == {str(tasks[0].pk)}


def test_it_answers_400_for_a_login_without_a_password(db):
    response = post_json(Client(), f"{ACCOUNT}login/", {"username": "alice"})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"


def test_failed_logins_are_throttled_on_the_api_the_pages_and_the_admin(alice, settings):
    from tasks.queues import redis_connection
    from users.throttle import KEY

    settings.MEDIACRAFT_LOGIN_FAILURES = 3
    alice.is_staff = alice.is_superuser = True
    alice.save()
    for _ in range(3):
        assert_error(login(Client(), "ALICE", "wrong-password"), 401, "invalid_login")  # any case: one name
    refused = login(Client(), "alice", "alice-pass-123!")  # even the right password, for now
    error = assert_error(refused, 429, "too_many_logins")
    assert "try again in 15 minutes" in error["message"] and 850 <= int(refused["Retry-After"]) <= 900
    page = Client().post("/account/login/", {"login-username": "alice", "login-password": "alice-pass-123!"})
    assert page.status_code == 400 and "Too many failed logins" in page.content.decode()
    admin = Client().post("/admin/login/", {"username": "alice", "password": "alice-pass-123!"})
    assert admin.status_code == 200 and not admin.wsgi_request.user.is_authenticated  # the form again
    assert login(Client(), "bob", "wrong-password").status_code == 401  # other names: their own count
    for key in redis_connection().scan_iter(f"{KEY}user:*"):
        redis_connection().expire(key, 1)  # the window passes
    wait_for(lambda: not list(redis_connection().scan_iter(f"{KEY}user:*")), 5, message="the window to pass")
    assert login(Client(), "alice", "alice-pass-123!").status_code == 200
    # Many names from one address: that address waits too (five times a name's limit).
    for i in range(15):
        login(Client(), f"nobody-{i}", "wrong-password")
    assert_error(login(Client(), "alice", "alice-pass-123!"), 429, "too_many_logins")


def test_it_csrf_checks_claim_login_and_logout(alice):
    client = Client(enforce_csrf_checks=True)
    assert_error(login(client, "alice", "alice-pass-123!"), 403, "csrf_failed")
    assert_error(claim(client, "dora"), 403, "csrf_failed")
    assert not User.objects.filter(username="dora").exists()
    token = account(client)["csrf_token"]
    response = login(client, "alice", "alice-pass-123!", headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.content
    assert_error(client.post(f"{ACCOUNT}logout/"), 403, "csrf_failed")
    assert account(client)["authenticated"] is True


# --- storage ---------------------------------------------------------------------------------------


def stored(owner, size, name="f.bin"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from storage import services as storage

    return storage.file_store_upload(owner=owner, upload=SimpleUploadedFile(name, b"x" * size), video=False)


def test_it_tells_what_my_files_take_of_my_quota(alice, bob, client_for, settings):
    settings.MEDIACRAFT_USER_QUOTA_MB = 3
    client = client_for(alice)
    assert account(client)["storage"] == {"used_bytes": 0, "quota_bytes": 3 * 1024 * 1024}
    stored(alice, 1500)
    kept = stored(alice, 2500)
    stored(bob, 7000)
    assert account(client)["storage"]["used_bytes"] == 4000
    kept.delete()
    assert account(client)["storage"]["used_bytes"] == 1500
    assert account(Client())["storage"] == {"used_bytes": 0, "quota_bytes": 3 * 1024 * 1024}


def test_the_account_page_shows_the_storage_used_in_the_viewers_language(alice, client_for, settings):
    settings.MEDIACRAFT_USER_QUOTA_MB = 2048
    settings.MEDIACRAFT_RESULT_TTL_DAYS = 3
    stored(alice, 1536)
    client = client_for(alice)
    page = " ".join(client.get("/account/").content.decode().split())
    assert "<strong>1.5 KB</strong> used of 2.0 GB." in page  # (split() also splits at the no-break spaces)
    assert 'max="2147483648" value="1536"' in page
    assert "kept 3 days after it ends" in page
    chinese = " ".join(client.get("/account/", headers={"Accept-Language": "zh-hans"}).content.decode().split())
    assert "已用 <strong>1.5 KB</strong>，共 2.0 GB。" in chinese
    assert "Storage" not in Client().get("/account/").content.decode()  # nobody yet: nothing stored


# --- API tokens ----------------------------------------------------------------------------------


def test_it_lists_my_tokens_in_the_account(alice, bob, client_for):
    client = client_for(alice)
    first = create_token(client, "laptop")
    second = create_token(client, "ci")
    create_token(client_for(bob), "bobs")
    tokens = account(client)["tokens"]
    assert [t["id"] for t in tokens] == [second["id"], first["id"]]
    assert [t["name"] for t in tokens] == ["ci", "laptop"]
    assert set(tokens[0]) == {"id", "name", "prefix", "created_at", "last_used_at"}
    assert tokens[0]["prefix"] == second["token"][:10]
    assert tokens[0]["last_used_at"] is None


def test_it_records_when_a_token_was_last_used(alice, client_for):
    client = client_for(alice)
    created = create_token(client)
    Client(headers={"Authorization": f"Bearer {created['token']}"}).get(TASKS)
    assert account(client)["tokens"][0]["last_used_at"] is not None


def test_it_records_a_tokens_use_at_most_once_a_minute(alice, client_for):
    from datetime import timedelta

    from django.utils import timezone

    created = create_token(client_for(alice))
    token = ApiToken.objects.get(pk=created["id"])
    script = Client(headers={"Authorization": f"Bearer {created['token']}"})
    for ago, written in ((timedelta(seconds=30), False), (timedelta(seconds=90), True)):
        before = timezone.now() - ago
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=before)
        assert script.get(TASKS).status_code == 200
        after = ApiToken.objects.get(pk=token.pk).last_used_at
        assert (after > before) is written, (ago, before, after)


def test_a_token_of_a_deactivated_user_is_refused(alice, client_for):
    created = create_token(client_for(alice))
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert_error(Client(headers={"Authorization": f"Bearer {created['token']}"}).get(TASKS), 401, "invalid_token")


def test_it_refuses_an_overlong_token_name(alice, client_for):
    response = post_json(client_for(alice), f"{ACCOUNT}tokens/", {"name": "n" * 101})
    assert_error(response, 400, "invalid_name")
    assert not ApiToken.objects.exists()


def test_it_revokes_a_token(alice, client_for):
    client = client_for(alice)
    kept = create_token(client, "kept")
    revoked = create_token(client, "revoked")
    response = client.delete(f"{ACCOUNT}tokens/{revoked['id']}/")
    assert response.status_code == 204
    assert [t["id"] for t in account(client)["tokens"]] == [kept["id"]]
    gone = Client(headers={"Authorization": f"Bearer {revoked['token']}"})
    assert_error(gone.get(TASKS), 401, "invalid_token")
    assert Client(headers={"Authorization": f"Bearer {kept['token']}"}).get(TASKS).status_code == 200
    assert_error(client.delete(f"{ACCOUNT}tokens/{revoked['id']}/"), 404, "not_found")


def test_it_does_not_let_bob_revoke_alices_token(alice, bob, client_for):
    created = create_token(client_for(alice))
    assert_error(client_for(bob).delete(f"{ACCOUNT}tokens/{created['id']}/"), 404, "not_found")
    assert ApiToken.objects.filter(pk=created["id"]).exists()
    assert Client(headers={"Authorization": f"Bearer {created['token']}"}).get(TASKS).status_code == 200


@pytest.mark.parametrize("token_id", ["abc", "-1", "0", "1.5", "%C2%B2", "99999999999999999999999"])
def test_it_answers_404_for_a_malformed_token_id(alice, client_for, token_id):
    client = client_for(alice)
    create_token(client)
    assert_error(client.delete(f"{ACCOUNT}tokens/{token_id}/"), 404, "not_found")
    assert ApiToken.objects.count() == 1


def test_it_deletes_a_visitors_tokens_with_the_merged_visitor(alice, tool):
    client, visitor, _tasks = new_visitor_with_tasks(0, tool)
    created = create_token(client)
    assert login(client, "alice", "alice-pass-123!").status_code == 200
    assert_error(Client(headers={"Authorization": f"Bearer {created['token']}"}).get(TASKS), 401, "invalid_token")



def test_it_refuses_nul_bytes_in_credentials_and_token_names(db, client, client_for, alice):
    # PostgreSQL cannot even compare text with NUL: these must be clear 400s, never 500s.
    response = client.post("/api/account/login/", {"username": "ali\x00ce", "password": "x"},
                           content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_login"
    response = client_for(alice).post("/api/account/tokens/", {"name": "bad\x00name"}, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_name"
