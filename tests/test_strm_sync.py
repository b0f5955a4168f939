"""The strm_sync processor against a real WebDAV server (wsgidav on loopback, basic auth) and a
local folder: .strm contents byte for byte, sidecars, incremental syncs, safety."""

import os
import time

import httpx
import pytest

from strm.models import StrmFileState, StrmProfile
from tasks.errors import TaskError
from tests.strm_support import (
    DAV_PASSWORD, DAV_USER, dav_factory, expected_url, files_under, make_library, make_profile, run_processor,
    strm_name, write,
)
from tests.strm_support import roots  # noqa: F401  (a fixture)

__all__ = ["dav_factory"]  # the fixture, imported for pytest


def dav_profile(dav, roots, name="dav", **fields):
    fields = {"source_type": "webdav", "source_url": dav.url, "source_username": DAV_USER,
              "source_password": DAV_PASSWORD, "target_path": str(roots / "library"), **fields}
    return make_profile(name=name, **fields)


def local_profile(roots, name="local", **fields):
    fields = {"source_type": "local", "source_path": str(roots / "source"), "target_path": str(roots / "library"),
              **fields}
    return make_profile(name=name, **fields)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr("strm.sources.RETRY_DELAYS", (0.01, 0.01, 0.01))


def test_it_builds_a_library_of_thousands_of_awkward_names_from_webdav_byte_for_byte(db, alice, roots, dav_factory):
    source, library = roots / "source", roots / "library"
    media, sidecars = make_library(source, shows=16, seasons=4, episodes=24)
    assert len(media) + len(sidecars) > 2000
    dav = dav_factory(source)
    profile = dav_profile(dav, roots, listing_concurrency=8)

    task, result, reporter = run_processor(alice, profile, "full")

    totals = result["totals"]
    assert totals["generated"] == len(media) + len(sidecars)
    assert totals["failed"] == 0 and totals["deleted"] == 0 and totals["skipped"] == 0
    assert totals["unmatched"] == 16 * 4  # the notes.txt files
    assert len(result["generated"]) == 200 and result["truncated"] is True
    assert files_under(library) == {strm_name(m) for m in media} | set(sidecars)
    for rel in media:
        assert (library / strm_name(rel)).read_bytes() == expected_url(dav.url, rel).encode()
    for rel in sidecars:
        assert (library / rel).read_bytes() == (source / rel).read_bytes()
        assert int((library / rel).stat().st_mtime) == int((source / rel).stat().st_mtime)
    # The URLs are real: the server hands back the very file for a sample of them.
    with httpx.Client(auth=(DAV_USER, DAV_PASSWORD)) as client:
        for rel in media[::37]:
            url = (library / strm_name(rel)).read_text()
            assert client.get(url).content == (source / rel).read_bytes(), rel
    stats = reporter.updates[-1]["stats"]
    assert stats["listed"] == len(media) + len(sidecars) + 64 and stats["files_per_second"] > 0
    assert {u["stage"] for u in reporter.updates} >= {"strm_scanning", "strm_listing", "strm_saving"}
    assert StrmFileState.objects.filter(profile=profile).count() == len(media) + len(sidecars)


def test_it_encodes_every_segment_exactly(db, alice, roots, dav_factory):
    source, library = roots / "source", roots / "library"
    write(source / "Dir #1 %25 & 中文" / "a b#c%d&e 中 'q' \"dq\".mkv")
    write(source / "x+y;z=1@2,3!$~().mp4")
    dav = dav_factory(source)
    run_processor(alice, dav_profile(dav, roots), "full")
    assert (library / "Dir #1 %25 & 中文" / "a b#c%d&e 中 'q' \"dq\".strm").read_text() == (
        f"{dav.url}Dir%20%231%20%2525%20%26%20%E4%B8%AD%E6%96%87/"
        "a%20b%23c%25d%26e%20%E4%B8%AD%20%27q%27%20%22dq%22.mkv"
    )
    assert (library / "x+y;z=1@2,3!$~().strm").read_text() == f"{dav.url}x%2By%3Bz%3D1%402%2C3%21%24~%28%29.mp4"


def test_it_writes_a_custom_base_a_template_or_credentials(db, alice, roots, dav_factory):
    source, library = roots / "source", roots / "library"
    write(source / "电影" / "A & B.mkv")
    dav = dav_factory(source)
    profile = dav_profile(dav, roots, url_base="http://alist.lan:5244/d/影视/")
    run_processor(alice, profile, "full")
    assert (library / "电影" / "A & B.strm").read_text() == "http://alist.lan:5244/d/影视/%E7%94%B5%E5%BD%B1/A%20%26%20B.mkv"

    StrmProfile.objects.filter(pk=profile.pk).update(url_base="", url_template="{raw_path}|{path}")
    _task, result, _r = run_processor(alice, StrmProfile.objects.get(pk=profile.pk), "incremental")
    assert result["checked_everything"] is True  # the template changed: nothing is trusted
    assert (library / "电影" / "A & B.strm").read_text() == "电影/A & B.mkv|%E7%94%B5%E5%BD%B1/A%20%26%20B.mkv"

    StrmProfile.objects.filter(pk=profile.pk).update(url_template="", url_credentials=True)
    run_processor(alice, StrmProfile.objects.get(pk=profile.pk), "incremental")
    text = (library / "电影" / "A & B.strm").read_text()
    assert text == dav.url.replace("http://", "http://librarian:pa%20ss%3Aw%C3%B6rd%231@") + "%E7%94%B5%E5%BD%B1/A%20%26%20B.mkv"
    with httpx.Client() as client:  # the credentials in the URL are enough to play it
        assert client.get(text).content == (source / "电影" / "A & B.mkv").read_bytes()


def test_it_syncs_a_local_folder_with_absolute_paths_and_sidecars(db, alice, roots):
    source, library = roots / "source", roots / "library"
    media, sidecars = make_library(source, shows=3, seasons=2, episodes=5)
    os.symlink("/etc", source / "linked-folder")  # links to folders are not followed
    _task, result, _r = run_processor(alice, local_profile(roots, listing_concurrency=3), "full")  # threads
    assert result["totals"]["generated"] == len(media) + len(sidecars)
    for rel in media:
        assert (library / strm_name(rel)).read_bytes() == str(source / rel).encode()
    for rel in sidecars:
        assert (library / rel).read_bytes() == (source / rel).read_bytes()
    assert not (library / "linked-folder").exists()


def test_it_syncs_incrementally_after_adds_changes_and_deletions(db, alice, roots, dav_factory):
    source, library = roots / "source", roots / "library"
    media, sidecars = make_library(source, shows=3, seasons=2, episodes=6)
    dav = dav_factory(source)
    profile = dav_profile(dav, roots)
    run_processor(alice, profile, "full")
    before = {rel: (library / rel).stat().st_mtime_ns for rel in files_under(library)}

    _t, result, _r = run_processor(alice, profile, "incremental")
    assert result["totals"]["generated"] == 0 and result["totals"]["deleted"] == 0
    assert result["totals"]["skipped"] == len(media) + len(sidecars)
    assert result["checked_everything"] is False

    show = media[0].split("/")[0]
    write(source / show / "Season 9" / "New & 新.mkv")  # added
    write(source / show / "Season 9" / "New & 新.srt", "new subtitle")
    changed_sub = next(s for s in sidecars if s.endswith(".srt"))
    time.sleep(1.1)  # WebDAV times have whole seconds
    write(source / changed_sub, "changed subtitle text, longer than before")
    gone_media = media[-1]
    os.remove(source / gone_media)  # deleted
    gone_folder = "/".join(media[-13].split("/")[:2])
    for rel in list(media) + list(sidecars):
        if rel.startswith(gone_folder + "/") and (source / rel).exists():
            os.remove(source / rel)
    (source / gone_folder / "notes.txt").unlink()
    (source / gone_folder).rmdir()

    _t, result, _r = run_processor(alice, profile, "incremental")
    assert sorted(result["generated"]) == sorted([f"{show}/Season 9/New & 新.strm", f"{show}/Season 9/New & 新.srt",
                                                  changed_sub])
    assert (library / changed_sub).read_text() == "changed subtitle text, longer than before"
    assert (library / show / "Season 9" / "New & 新.strm").read_text() == expected_url(dav.url, f"{show}/Season 9/New & 新.mkv")
    assert strm_name(gone_media) in result["deleted"]
    assert not (library / strm_name(gone_media)).exists()
    assert not (library / gone_folder).exists()  # emptied folders go too
    untouched = next(m for m in media if not m.startswith(gone_folder) and m != gone_media)
    assert (library / strm_name(untouched)).stat().st_mtime_ns == before[strm_name(untouched)]
    assert result["totals"]["deleted"] == len([r for r in before if r.startswith(gone_folder + "/")]) + 1

    # An output removed by hand comes back on the next incremental sync.
    (library / strm_name(untouched)).unlink()
    _t, result, _r = run_processor(alice, profile, "incremental")
    assert result["generated"] == [strm_name(untouched)]
    assert (library / strm_name(untouched)).read_text() == expected_url(dav.url, untouched)


def test_a_listing_failure_half_way_deletes_nothing_and_names_the_folder(db, alice, roots, dav_factory):
    source, library = roots / "source", roots / "library"
    media, sidecars = make_library(source, shows=4, seasons=2, episodes=4)
    dav = dav_factory(source)
    profile = dav_profile(dav, roots)
    run_processor(alice, profile, "full")
    write(library / "orphan.strm", "left by someone")
    first_show = media[0].split("/")[0]
    # The source loses a file, gains one, and one folder can no longer be listed.
    os.remove(source / media[-1])
    write(source / "Fresh" / "new.mkv")
    dav.fail.add(f"{first_show}/Season 2")

    with pytest.raises(TaskError) as err:
        run_processor(alice, profile, "full")
    assert err.value.code == "strm_listing_failed"
    assert err.value.params["count"] == 1
    assert f"{first_show}/Season 2/" in err.value.params["paths"]
    assert f"{first_show}/Season 2/: HTTP 500" in err.value.detail
    assert (library / "orphan.strm").exists()  # nothing deleted ...
    assert (library / strm_name(media[-1])).exists()
    assert (library / "Fresh" / "new.strm").exists()  # ... and what was written stays
    assert not [p for p in files_under(library) if ".mcsync-" in p]
    assert StrmFileState.objects.filter(profile=profile, path="Fresh/new.mkv").exists()

    dav.fail.clear()
    _t, result, _r = run_processor(alice, profile, "full")
    assert sorted(result["deleted"]) == sorted(["orphan.strm", strm_name(media[-1])])


def test_it_stops_at_a_wrong_password_or_a_missing_source_deleting_nothing(db, alice, roots, dav_factory):
    source, library = roots / "source", roots / "library"
    write(source / "a.mkv")
    write(library / "keep.strm", "mine")
    dav = dav_factory(source)
    profile = dav_profile(dav, roots, source_password="wrong")
    with pytest.raises(TaskError) as err:
        run_processor(alice, profile, "full")
    assert err.value.code == "strm_source_auth" and err.value.params == {"status": 401}

    missing = dav_profile(dav, roots, name="missing", source_url=dav.url + "nope/",
                          target_path=str(roots / "library2"))
    with pytest.raises(TaskError) as err:
        run_processor(alice, missing, "full")
    assert err.value.code == "strm_source_missing"

    local = local_profile(roots, name="gone", target_path=str(roots / "library3"))
    os.rename(source, roots / "moved")
    with pytest.raises(TaskError) as err:
        run_processor(alice, local, "full")
    assert err.value.code == "strm_source_missing"
    assert (library / "keep.strm").read_text() == "mine"


def test_it_speaks_digest_to_a_server_that_only_accepts_digest(db, alice, roots, dav_factory):
    source, library = roots / "source", roots / "library"
    write(source / "Show" / "ep 1.mkv")
    write(source / "Show" / "ep 1.srt", "subtitle")
    dav = dav_factory(source, digest=True)
    _t, result, _r = run_processor(alice, dav_profile(dav, roots), "full")
    assert sorted(result["generated"]) == ["Show/ep 1.srt", "Show/ep 1.strm"]
    assert (library / "Show" / "ep 1.srt").read_text() == "subtitle"


def test_a_password_encrypted_under_another_secret_key_fails_the_sync_clearly(db, alice, roots, dav_factory,
                                                                              settings):
    write(roots / "source" / "a.mkv")
    dav = dav_factory(roots / "source")
    profile = dav_profile(dav, roots)
    assert DAV_PASSWORD not in profile.source_password_encrypted
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-rotated-secret-key-" + "x" * 40
    _t, result, _r = run_processor(alice, StrmProfile.objects.get(pk=profile.pk), "full")  # fallbacks still decrypt
    assert result["generated"] == ["a.strm"]
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(TaskError) as err:
        run_processor(alice, StrmProfile.objects.get(pk=profile.pk), "full")
    assert err.value.code == "strm_password_unreadable" and err.value.params == {"profile": "dav"}


def test_it_refuses_to_empty_the_library_when_the_source_lists_nothing(db, alice, roots):
    source, library = roots / "source", roots / "library"
    write(source / "a.mkv")
    write(source / "b.mkv")
    profile = local_profile(roots)
    run_processor(alice, profile, "full")
    for name in ("a.mkv", "b.mkv"):
        (source / name).unlink()  # e.g. an rclone mount that dropped
    with pytest.raises(TaskError) as err:
        run_processor(alice, profile, "incremental")
    assert err.value.code == "strm_source_empty" and err.value.params == {"count": 2}
    assert files_under(library) == {"a.strm", "b.strm"}


def test_the_ignore_pattern_protects_files_from_deletion(db, alice, roots):
    source, library = roots / "source", roots / "library"
    write(source / "Show" / "ep1.mkv")
    write(source / "Show" / "ep1.nfo")
    write(source / "Show" / "ep2.mkv")
    profile = local_profile(roots, ignore_patterns="# mine\n*.nfo\n/Personal/\n**/extrafanart/\n")
    run_processor(alice, profile, "full")
    write(library / "Personal" / "home.strm", "mine")
    write(library / "Show" / "extrafanart" / "fan.jpg", "art")
    write(library / "Show" / "scraped.nfo", "scraper")
    write(library / "Show" / "stray.strm", "stray")
    (source / "Show" / "ep1.nfo").unlink()
    (source / "Show" / "ep2.mkv").unlink()
    _t, result, _r = run_processor(alice, profile, "full")
    assert sorted(result["deleted"]) == ["Show/ep2.strm", "Show/stray.strm"]
    assert result["totals"]["protected"] == 4  # ep1.nfo, scraped.nfo, home.strm, fan.jpg
    assert files_under(library) == {"Show/ep1.strm", "Show/ep1.nfo", "Show/scraped.nfo", "Personal/home.strm",
                                    "Show/extrafanart/fan.jpg"}


def test_orphan_deletion_only_touches_files_a_sync_could_have_written(db, alice, roots):
    source, library = roots / "source", roots / "library"
    write(source / "Show" / "ep.mkv")
    mine = ["Show/home video.mkv", ".plexignore", "Show/.stfolder.strm", "readme.txt", "Show/notes"]
    for rel in mine:
        write(library / rel, "the owner's")
    write(library / "Old" / "gone.strm", "stale")
    write(library / "Old" / "gone.srt", "stale")
    _t, result, _r = run_processor(alice, local_profile(roots), "full")
    assert sorted(result["deleted"]) == ["Old/gone.srt", "Old/gone.strm"]
    assert files_under(library) == {"Show/ep.strm", *mine}
    assert not (library / "Old").exists()


def test_it_skips_hidden_entries_and_links_leading_out_of_the_allowed_folders(db, alice, roots, tmp_path):
    source, library = roots / "source", roots / "library"
    write(source / "Show" / "ep.mkv")
    write(source / "Show" / "._ep.mkv")  # macOS AppleDouble
    write(source / ".recycle" / "old.mkv")
    write(source / "Show" / "@eaDir" / "ep.mkv" / "SYNOPHOTO_THUMB.jpg")
    write(tmp_path / "secret.srt", "not for the library")
    os.symlink(tmp_path / "secret.srt", source / "Show" / "leak.srt")
    os.symlink(source / "Show" / "ep.mkv", source / "Show" / "alias.mkv")  # inside: fine
    _t, result, _r = run_processor(alice, local_profile(roots), "full")
    assert files_under(library) == {"Show/ep.strm", "Show/alias.strm"}
    assert result["errors"] == [{"path": "Show/leak.srt", "reason": "a link leading outside the allowed folders"}]


def test_it_keeps_orphans_when_told_to_but_still_removes_its_own_outputs(db, alice, roots):
    source, library = roots / "source", roots / "library"
    write(source / "a.mkv")
    write(source / "b.mkv")
    profile = local_profile(roots, delete_orphans=False)
    run_processor(alice, profile, "full")
    write(library / "foreign.strm", "not ours")
    (source / "b.mkv").unlink()
    _t, result, _r = run_processor(alice, profile, "full")
    assert result["deleted"] == ["b.strm"]
    assert files_under(library) == {"a.strm", "foreign.strm"}


def test_it_never_touches_anything_outside_the_library(db, alice, roots, tmp_path):
    source, library = roots / "source", roots / "library"
    outside = tmp_path / "outside"
    write(outside / "precious.strm", "precious")
    write(source / "Linked" / "ep.mkv")
    write(source / "Real" / "ep.mkv")
    os.symlink(outside, library / "Linked")  # a link in the library leading out of it
    os.symlink(outside / "precious.strm", library / "escape.strm")
    profile = local_profile(roots)
    _t, result, _r = run_processor(alice, profile, "full")
    assert result["totals"]["failed"] == 1
    assert result["errors"] == [{"path": "Linked/ep.mkv", "reason": "Linked is a link leading out of the library folder"}]
    assert not os.path.lexists(library / "escape.strm")  # an orphan link goes; what it points at stays
    assert os.path.islink(library / "Linked")  # not a file a sync writes: left alone
    assert (outside / "precious.strm").read_text() == "precious"
    assert sorted(os.listdir(outside)) == ["precious.strm"]
    assert (library / "Real" / "ep.strm").exists()


def test_a_deletion_through_a_link_out_of_the_library_is_refused_and_retried_later(db, alice, roots, tmp_path):
    import shutil

    source, library = roots / "source", roots / "library"
    write(source / "Show" / "ep.mkv")
    write(source / "Other" / "keep.mkv")
    profile = local_profile(roots)
    run_processor(alice, profile, "full")
    outside = tmp_path / "outside"
    write(outside / "ep.strm", "not the library's")
    shutil.rmtree(library / "Show")
    os.symlink(outside, library / "Show")  # the library's Show folder now leads elsewhere
    (source / "Show" / "ep.mkv").unlink()
    _t, result, _r = run_processor(alice, profile, "incremental")
    assert result["deleted"] == [] and result["failed"] == ["Show/ep.strm"]
    assert result["errors"][0]["reason"] == "not deleted: Show leads out of the library folder"
    assert (outside / "ep.strm").read_text() == "not the library's"
    assert StrmFileState.objects.filter(profile=profile, path="Show/ep.mkv").exists()  # tried again next time
    (library / "Show").unlink()
    write(library / "Show" / "ep.strm", "back inside")
    _t, result, _r = run_processor(alice, profile, "incremental")
    assert result["deleted"] == ["Show/ep.strm"]
    assert not StrmFileState.objects.filter(profile=profile, path="Show/ep.mkv").exists()


class EvilDav:
    """A WebDAV server that answers PROPFIND with hrefs trying to climb out of the source."""

    def __init__(self, dav_root):
        from cheroot import wsgi

        import threading

        self.server = wsgi.Server(("127.0.0.1", 0), self.app, numthreads=4)
        self.server.prepare()
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.bind_addr[1]}/dav/lib/"

    def app(self, environ, start_response):
        def file(href):
            return (f"<D:response><D:href>{href}</D:href><D:propstat><D:prop><D:resourcetype/>"
                    "<D:getcontentlength>1</D:getcontentlength></D:prop><D:status>HTTP/1.1 200 OK</D:status>"
                    "</D:propstat></D:response>")

        hrefs = ["/dav/lib/", "/dav/lib/../../etc/evil.mkv", "/dav/lib/%2E%2E/x.mkv", "/dav/other/y.mkv",
                 "http://evil.example/dav/lib/z.mkv", "/dav/lib/a%2Fb.mkv", "/dav/lib/ok.mkv",
                 "/dav/lib/%2E%2E%2F%2E%2E%2Fup.mkv"]
        body = ('<?xml version="1.0"?><D:multistatus xmlns:D="DAV:">' + "".join(map(file, hrefs)) + "</D:multistatus>")
        start_response("207 Multi-Status", [("Content-Type", "application/xml")])
        return [body.encode()]

    def stop(self):
        self.server.stop()


def test_a_hostile_server_cannot_make_it_write_outside_the_library(db, alice, roots, tmp_path):
    evil = EvilDav(tmp_path)
    try:
        profile = make_profile(name="evil", source_type="webdav", source_url=evil.url,
                               target_path=str(roots / "library"))
        _t, result, _r = run_processor(alice, profile, "full")
    finally:
        evil.stop()
    library = roots / "library"
    # Only the honest entry, and z.mkv: a foreign host is ignored and the path kept on our server.
    assert files_under(library) == {"ok.strm", "z.strm"}
    assert (library / "z.strm").read_text() == evil.url + "z.mkv"
    assert {e["path"]: e["reason"] for e in result["errors"]} == {
        "/dav/lib/../../etc/evil.mkv": "outside the source folder",
        "/dav/other/y.mkv": "outside the source folder",
        "a/b.mkv": "unsafe file name",
        "../../up.mkv": "unsafe file name",
    }
    assert not (roots / "etc").exists() and not (tmp_path / "etc").exists()
    assert files_under(roots) == {"library/ok.strm", "library/z.strm"}


def test_two_sources_mapping_to_one_strm_are_reported_not_overwritten(db, alice, roots):
    source, library = roots / "source", roots / "library"
    write(source / "Movie.mkv", "mkv")
    write(source / "Movie.mp4", "mp4")
    _t, result, _r = run_processor(alice, local_profile(roots), "full")
    assert result["totals"]["generated"] == 1 and result["totals"]["failed"] == 1
    winner = (library / "Movie.strm").read_text()
    loser = result["failed"][0]
    assert winner.endswith(("Movie.mkv", "Movie.mp4")) and not winner.endswith(loser)


def test_a_sidecar_over_the_limit_is_reported(db, alice, roots, dav_factory):
    source, library = roots / "source", roots / "library"
    write(source / "big.srt", b"0" * (1024 * 1024 + 1))
    write(source / "small.srt", "ok")
    dav = dav_factory(source)
    _t, result, _r = run_processor(alice, dav_profile(dav, roots, sidecar_max_mb=1), "full")
    assert result["failed"] == ["big.srt"] and result["generated"] == ["small.srt"]
    assert not (library / "big.srt").exists()


def test_a_second_run_of_a_profile_is_refused_while_one_holds_it(db, alice, roots):
    from strm import services
    from tasks.models import Task

    write(roots / "source" / "a.mkv")
    profile = local_profile(roots)
    holder = Task.objects.create(owner=alice, kind="strm_sync", status=Task.Status.RUNNING, timeout=60,
                                 params={"profile": profile.pk, "sync_type": "full"})
    assert services.strm_profile_claim(profile_id=profile.pk, task_id=holder.pk) is None
    with pytest.raises(TaskError) as err:
        run_processor(alice, profile, "full")
    assert err.value.code == "strm_already_running" and err.value.params == {"task_id": str(holder.pk)}
    Task.objects.filter(pk=holder.pk).update(status=Task.Status.FAILED)  # a dead holder is taken over
    _t, result, _r = run_processor(alice, profile, "full")
    assert result["generated"] == ["a.strm"]
    assert StrmProfile.objects.get(pk=profile.pk).running_task_id is None


def test_the_roots_are_checked_again_when_the_sync_runs(db, alice, roots, settings, tmp_path):
    write(roots / "source" / "a.mkv")
    profile = local_profile(roots)
    settings.MEDIACRAFT_STRM_ROOTS = [str(tmp_path / "elsewhere")]
    with pytest.raises(TaskError) as err:
        run_processor(alice, profile, "full")
    assert err.value.code == "strm_path_not_allowed"
    assert not (roots / "library" / "a.strm").exists()


def test_it_removes_temporary_files_a_killed_sync_left(db, alice, roots):
    write(roots / "source" / "a.mkv")
    stale = write(roots / "library" / "Show" / ".mcsync-dead-1.tmp", "half")
    run_processor(alice, local_profile(roots), "full")
    assert not stale.exists()
    assert files_under(roots / "library") == {"a.strm"}


def test_an_unchanged_incremental_sync_of_many_files_is_quick(db, alice, roots):
    source = roots / "source"
    for i in range(100):
        folder = source / f"F {i} #"
        folder.mkdir()
        for j in range(100):
            (folder / f"ep {j} & 中.mkv").write_bytes(b"x")
    profile = local_profile(roots)
    _t, result, _r = run_processor(alice, profile, "full")
    assert result["totals"]["generated"] == 10_000
    started = time.monotonic()
    _t, result, _r = run_processor(alice, profile, "incremental")
    elapsed = time.monotonic() - started
    assert result["totals"]["skipped"] == 10_000 and result["totals"]["generated"] == 0
    assert elapsed < 3, elapsed
