"""STRM profiles: allowed roots, validation, URL encoding and ignore-pattern helpers, the schedule
(service and scheduler command), the settings helper and the admin."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from strm import paths
from strm.models import StrmProfile
from strm.services import profile_next_run, strm_start_due_syncs
from tasks.models import Task
from tests.conftest import ROOT, subprocess_env, wait_for
from tests.strm_support import make_profile, write
from tests.strm_support import roots  # noqa: F401  (a fixture)


def local(roots, name="local", **fields):
    values = {"source_type": "local", "source_path": str(roots / "source"), "target_path": str(roots / "library"),
              **fields}
    return StrmProfile(name=name, **values)


def errors_of(profile):
    with pytest.raises(ValidationError) as err:
        profile.full_clean()
    return err.value.message_dict


def test_it_confines_both_folders_to_the_allowed_roots(db, roots, tmp_path, settings):
    local(roots).full_clean()
    local(roots, target_path=str(roots), source_type="webdav", source_url="http://h/dav").full_clean()  # a root itself
    assert "is not an absolute path" in errors_of(local(roots, target_path="library"))["target_path"][0]
    outside = errors_of(local(roots, target_path=str(tmp_path / "elsewhere")))["target_path"][0]
    assert "outside the allowed folders" in outside and str(roots) in outside
    assert "outside" in errors_of(local(roots, target_path=str(roots / ".." / "escape")))["target_path"][0]
    os.symlink(tmp_path, roots / "sneaky")
    assert "outside" in errors_of(local(roots, target_path=str(roots / "sneaky" / "lib")))["target_path"][0]
    assert "outside" in errors_of(local(roots, source_path="/etc"))["source_path"][0]
    assert "does not exist" in errors_of(local(roots, source_path=str(roots / "nope")))["source_path"][0]
    write(roots / "file")
    assert "is a file" in errors_of(local(roots, target_path=str(roots / "file")))["target_path"][0]
    settings.MEDIACRAFT_STRM_ROOTS = []
    assert "MEDIACRAFT_STRM_ROOTS" in errors_of(local(roots))["target_path"][0]


def test_it_refuses_folders_that_contain_each_other(db, roots):
    assert "contain each other" in errors_of(local(roots, target_path=str(roots / "source" / "lib")))["target_path"][0]
    assert "contain each other" in errors_of(local(roots, source_path=str(roots), target_path=str(roots / "library")))[
        "target_path"][0]
    make_profile(name="first", source_type="local", source_path=str(roots / "source"),
                 target_path=str(roots / "library" / "tv"))
    assert "overlaps the one of profile first" in errors_of(local(roots, name="second"))["target_path"][0]
    local(roots, name="third", target_path=str(roots / "library-movies")).full_clean()  # a shared prefix is not overlap


@pytest.mark.parametrize("fields, field, text", [
    ({"media_extensions": "mkv mp/4"}, "media_extensions", "not a valid file extension"),
    ({"media_extensions": ""}, "media_extensions", "This field cannot be blank"),
    ({"media_extensions": " , "}, "media_extensions", "at least one media extension"),
    ({"media_extensions": "mkv strm"}, "media_extensions", "strm cannot be"),
    ({"sidecar_extensions": "srt MKV"}, "sidecar_extensions", "both media and sidecar: mkv"),
    ({"url_template": "{source_url}{nope}"}, "url_template", "Unknown placeholder {nope}"),
    ({"url_template": "{base}"}, "url_template", "must contain {source_url}, {path} or {raw_path}"),
    ({"url_template": "{path"}, "url_template", "unbalanced"),
    ({"url_template": "{path!r}"}, "url_template", "Unknown placeholder"),
    ({"url_base": "ftp://host/x"}, "url_base", "not an http:// or https:// URL"),
    ({"url_base": "http://host/d?sign=1"}, "url_base", "query"),
    ({"ignore_patterns": "*.nfo\n/\n"}, "ignore_patterns", "Line 2"),
    ({"listing_concurrency": 0}, "listing_concurrency", "greater than or equal to 1"),
    ({"listing_concurrency": 33}, "listing_concurrency", "less than or equal to 32"),
])
def test_it_refuses_bad_settings_naming_the_field(db, roots, fields, field, text):
    found = errors_of(local(roots, **fields))
    assert any(text in message for message in found[field]), found


@pytest.mark.parametrize("url, text", [
    ("", "Enter the WebDAV URL"),
    ("127.0.0.1:5244/dav", "not an http:// or https:// URL"),
    ("http://user:pw@127.0.0.1:5244/dav", "in their own fields"),
    ("http://127.0.0.1:99999/dav", "invalid port"),
    ("http://127.0.0.1/dav#frag", "fragment"),
])
def test_it_refuses_bad_webdav_urls(db, roots, url, text):
    profile = StrmProfile(name="dav", source_type="webdav", source_url=url, target_path=str(roots / "library"))
    assert text in errors_of(profile)["source_url"][0]


def test_it_validates_schedules(db, roots, alice, charlie):
    assert "interval in minutes" in errors_of(local(roots, schedule="interval", schedule_owner=alice))[
        "schedule_interval_minutes"][0]
    assert "not a valid cron" in errors_of(local(roots, schedule="cron", schedule_cron="61 * * * *",
                                                 schedule_owner=alice))["schedule_cron"][0]
    assert "Choose the account" in errors_of(local(roots, schedule="interval", schedule_interval_minutes=5))[
        "schedule_owner"][0]
    assert "lacks the operator permission" in errors_of(local(roots, schedule="interval", schedule_interval_minutes=5,
                                                              schedule_owner=charlie))["schedule_owner"][0]
    local(roots, schedule="cron", schedule_cron="30 3 * * 1-5", schedule_owner=alice).full_clean()


def test_the_url_helpers_encode_and_normalise():
    assert paths.encode_segment("a b#c%d&e 中'\"") == "a%20b%23c%25d%26e%20%E4%B8%AD%27%22"
    assert paths.encode_segment("~safe-_.") == "~safe-_."
    assert paths.normalise_url("HTTP://Host:5244/dav/影视 库/%E4%B8%AD/") == \
        "http://host:5244/dav/%E5%BD%B1%E8%A7%86%20%E5%BA%93/%E4%B8%AD/"
    assert paths.normalise_url("http://[::1]:8080/d") == "http://[::1]:8080/d"
    assert paths.with_credentials("http://h/dav/", "me@x", "p:w/#") == "http://me%40x:p%3Aw%2F%23@h/dav/"
    renderer = paths.StrmRenderer(template="{source_url}", base="/srv/media/", source_base="/srv/media/",
                                  source_is_url=False)
    assert renderer.render(renderer.folder_prefixes(("A #1",)), "b & c.mkv") == b"/srv/media/A #1/b & c.mkv"


@pytest.mark.parametrize("pattern, protected, exposed", [
    ("*.nfo", ["a.nfo", "x/y/z.nfo"], ["a.nfo.strm", "nfo", "a.srt"]),
    ("poster.jpg", ["poster.jpg", "Show/poster.jpg"], ["Show/poster.jpg.bak", "my poster.jpg"]),
    ("/Personal/", ["Personal/a.strm", "Personal/x/y"], ["Personal", "Other/Personal/a.strm"]),
    ("/Personal", ["Personal", "Personal/a.strm"], ["x/Personal"]),
    ("**/extrafanart/", ["Show/extrafanart/1.jpg", "extrafanart/2.jpg"], ["Show/extrafanart.jpg"]),
    ("Show/*.strm", ["Show/a.strm"], ["Show/sub/a.strm", "Other/Show/a.strm"]),
    ("Season ?", ["A/Season 1/e.strm"], ["A/Season 10/e.strm"]),
    ("[ab]*.strm", ["a1.strm", "d/b.strm"], ["c.strm"]),
    ("# just a comment\n\n", [], ["a.nfo"]),
])
def test_the_ignore_pattern_works_like_gitignore(pattern, protected, exposed):
    match = paths.compile_ignore(pattern)
    assert [p for p in protected if not match(p)] == []
    assert [p for p in exposed if match(p)] == []


def test_the_schedule_starts_incremental_syncs_when_due(db, roots, alice, caplog):
    profile = make_profile(schedule="interval", schedule_interval_minutes=30, schedule_owner=alice,
                           source_type="local", source_path=str(roots / "source"), target_path=str(roots / "library"))
    now = timezone.now()
    assert now + timedelta(minutes=29) < profile.next_run_at <= timezone.now() + timedelta(minutes=30)
    assert strm_start_due_syncs(now=now) == []

    later = profile.next_run_at + timedelta(seconds=1)
    started = strm_start_due_syncs(now=later)
    assert len(started) == 1
    task = started[0]
    assert task.owner == alice and task.kind == "strm_sync"
    assert task.params == {"profile": profile.pk, "profile_name": profile.name, "sync_type": "incremental",
                           "trigger": "schedule"}
    profile.refresh_from_db()
    assert profile.next_run_at == later + timedelta(minutes=30)
    # Due again while the first is still pending: the turn is skipped, not queued up.
    assert strm_start_due_syncs(now=profile.next_run_at) == []
    assert "still running" in caplog.text
    assert Task.objects.filter(kind="strm_sync").count() == 1
    # Editing the schedule recomputes the next run; disabling or removing it clears it.
    profile.schedule, profile.schedule_cron = "cron", "30 3 * * *"
    profile.save()
    local_next = timezone.localtime(profile.next_run_at)
    assert (local_next.hour, local_next.minute) == (3, 30)
    profile.enabled = False
    profile.save()
    assert profile.next_run_at is None
    assert profile_next_run(StrmProfile(schedule="none")) is None


def test_the_scheduler_command_starts_due_syncs(transactional_db, redis_conn, roots, alice):
    profile = make_profile(schedule="interval", schedule_interval_minutes=5, schedule_owner=alice,
                           source_type="local", source_path=str(roots / "source"), target_path=str(roots / "library"))
    StrmProfile.objects.filter(pk=profile.pk).update(next_run_at=timezone.now() - timedelta(minutes=1))
    run = subprocess.run([sys.executable, str(ROOT / "manage.py"), "taskscheduler", "--once"], cwd=ROOT,
                         env=subprocess_env({"MEDIACRAFT_STRM_ROOTS": str(roots)}), capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    task = wait_for(lambda: Task.objects.filter(kind="strm_sync").first(), 5, message="a scheduled sync")
    assert task.params["trigger"] == "schedule" and task.owner == alice
    assert StrmProfile.objects.get(pk=profile.pk).next_run_at > timezone.now()


def test_the_roots_setting_must_be_absolute(tmp_path, monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from mediacraft.settings import env_abs_paths

    os.symlink(tmp_path, tmp_path / "link")
    monkeypatch.setenv("MEDIACRAFT_STRM_ROOTS", f" {tmp_path}/link/a , /srv/media,")
    assert env_abs_paths("MEDIACRAFT_STRM_ROOTS") == [str(tmp_path / "a"), "/srv/media"]
    monkeypatch.setenv("MEDIACRAFT_STRM_ROOTS", "")
    assert env_abs_paths("MEDIACRAFT_STRM_ROOTS", ["/default"]) == []
    monkeypatch.setenv("MEDIACRAFT_STRM_ROOTS", "/ok,relative/library")
    with pytest.raises(ImproperlyConfigured, match="MEDIACRAFT_STRM_ROOTS must list absolute paths"):
        env_abs_paths("MEDIACRAFT_STRM_ROOTS")
    run = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "DJANGO_SETTINGS_MODULE": "mediacraft.settings",
                                         "MEDIACRAFT_STRM_ROOTS": "media/library"}, timeout=60)
    assert run.returncode != 0 and "MEDIACRAFT_STRM_ROOTS must list absolute paths, got 'media/library'" in run.stderr


def test_admins_create_profiles_keep_passwords_and_start_syncs(db, roots, admin_client, admin_user):
    form = {
        "name": "cloud", "description": "", "enabled": "on", "source_type": "webdav",
        "source_url": "http://127.0.0.1:5244/dav/movies", "source_username": "me", "source_password": "s3cret",
        "source_path": "", "target_path": str(roots / "library"),
        "media_extensions": paths.DEFAULT_MEDIA_EXTENSIONS, "sidecar_extensions": paths.DEFAULT_SIDECAR_EXTENSIONS,
        "sidecar_max_mb": "50", "ignore_patterns": "*.nfo", "delete_orphans": "on", "url_base": "",
        "url_template": "", "listing_concurrency": "4", "timeout": "3600", "schedule": "none",
        "schedule_interval_minutes": "", "schedule_cron": "", "schedule_owner": str(admin_user.pk),
    }
    assert admin_client.get("/admin/strm/strmprofile/add/").status_code == 200
    response = admin_client.post("/admin/strm/strmprofile/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    profile = StrmProfile.objects.get(name="cloud")
    assert profile.get_password() == "s3cret"
    assert "s3cret" not in profile.source_password_encrypted  # encrypted at rest
    page = admin_client.get(f"/admin/strm/strmprofile/{profile.pk}/change/").content.decode()
    assert "s3cret" not in page and profile.source_password_encrypted not in page
    response = admin_client.post(f"/admin/strm/strmprofile/{profile.pk}/change/",
                                 {**form, "source_password": "", "description": "edited"})
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.description == "edited" and profile.get_password() == "s3cret"
    admin_client.post(f"/admin/strm/strmprofile/{profile.pk}/change/", {**form, "source_password": "",
                                                                       "clear_password": "on"})
    profile.refresh_from_db()
    assert profile.get_password() == "" and not profile.has_password
    bad = admin_client.post("/admin/strm/strmprofile/add/", {**form, "name": "bad", "target_path": "/etc"})
    assert bad.status_code == 200 and "outside the allowed folders" in bad.content.decode()
    response = admin_client.post("/admin/strm/strmprofile/",
                                 {"action": "start_full", "_selected_action": [str(profile.pk)]}, follow=True)
    assert response.status_code == 200
    task = Task.objects.get(kind="strm_sync")
    assert task.owner == admin_user and task.params["sync_type"] == "full"
