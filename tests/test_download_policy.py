"""What a download task accepts: the URL policy (schemes, private and metadata addresses, names
that resolve to them) and the other parameters. A refusal is a translated 400 naming the URL or
parameter, and leaves nothing behind: no task, no visitor."""

import json
import socket

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from downloads import policy
from tasks.models import Task

TASKS = "/api/tasks/"


@pytest.fixture(autouse=True)
def private_refused(settings):
    settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE = False


def fake_dns(table):
    """A getaddrinfo answering from {host: [addresses]}; anything else does not resolve."""

    def resolve(host, port, type=0, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in table[host]]

    return resolve


def post(client, params, **extra):
    return client.post(TASKS, json.dumps({"kind": "download", "params": params, **extra}),
                       content_type="application/json")


def refused(response, code, field="urls.0"):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error.get("field") == field, error
    return error["message"]


@pytest.mark.parametrize("url, code", [
    ("http://127.0.0.1:8000/admin/", "url_private"),
    ("http://localhost/x", "url_private"),  # a name that resolves to loopback
    ("http://10.1.2.3/x", "url_private"),
    ("http://192.168.0.1/router", "url_private"),
    ("https://172.16.5.4/x", "url_private"),
    ("http://169.254.169.254/latest/meta-data/", "url_private"),  # cloud metadata
    ("http://100.100.100.200/latest/meta-data/", "url_private"),  # Alibaba's metadata, shared address space
    ("http://[::1]/x", "url_private"),
    ("http://[fd00:ec2::254]/", "url_private"),  # AWS's IPv6 metadata
    ("http://[::ffff:127.0.0.1]/x", "url_private"),  # IPv4 inside IPv6
    ("http://0.0.0.0:22/", "url_private"),
    ("ftp://127.0.0.1/pub/file", "url_private"),
    ("file:///etc/passwd", "url_scheme"),
    ("gopher://example.com/", "url_scheme"),
    ("javascript:alert(1)", "url_scheme"),
    ("sftp://example.com/file", "url_scheme"),
    ("magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567", "url_scheme"),
    ("http:///no-host", "url_invalid"),
    ("http://exa mple.com/", "url_invalid"),
    ("http://example.com:99999/", "url_invalid"),
    ("http://does-not-exist.invalid/file", "url_unresolved"),
])
def test_it_refuses_urls_outside_the_policy(db, url, code):
    client = Client()
    users = get_user_model().objects.count()
    message = refused(post(client, {"urls": [url]}), code)
    assert url[:40] in message or code == "url_unresolved" and "does-not-exist.invalid" in message
    assert Task.objects.count() == 0
    assert get_user_model().objects.count() == users  # a refused submit creates no visitor


def test_it_names_the_refused_url_of_a_batch(db, alice, monkeypatch):
    monkeypatch.setattr(policy.socket, "getaddrinfo", fake_dns({"media.example.com": ["93.184.216.34"]}))
    client = Client()
    client.force_login(alice)
    urls = "https://media.example.com/a.mp4\n\nfile:///etc/shadow\n"
    message = refused(post(client, {"urls": urls}), "url_scheme", field="urls.1")
    assert "file:///etc/shadow" in message and "only http, https and ftp" in message
    assert Task.objects.count() == 0
    assert post(client, {"urls": urls.replace("file:///etc/shadow", "")}).status_code == 201


def test_it_judges_names_by_every_address_they_resolve_to(monkeypatch):
    monkeypatch.setattr(policy.socket, "getaddrinfo", fake_dns({
        "media.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
        "rebind.example.com": ["93.184.216.34", "10.0.0.7"],
        "metadata.example.com": ["169.254.169.254"],
    }))
    assert policy.check_url(" https://media.example.com/a.mp4 ", allow_private=False) == "https://media.example.com/a.mp4"
    assert policy.check_url("ftp://media.example.com/pub/a.iso", allow_private=False)
    for host, address in (("rebind.example.com", "10.0.0.7"), ("metadata.example.com", "169.254.169.254")):
        with pytest.raises(policy.UrlRefused) as caught:
            policy.check_url(f"http://{host}/x", allow_private=False)
        assert caught.value.code == "url_private" and caught.value.params["address"] == address
    with pytest.raises(policy.UrlRefused) as caught:
        policy.check_url("http://unknown.example.com/", allow_private=False)
    assert caught.value.code == "url_unresolved"
    # Allowed private addresses skip the look-up, not the scheme check.
    assert policy.check_url("http://10.0.0.7/x", allow_private=True)
    with pytest.raises(policy.UrlRefused):
        policy.check_url("file:///etc/passwd", allow_private=True)


def test_it_accepts_private_addresses_only_when_allowed(db, alice, settings):
    client = Client()
    client.force_login(alice)
    refused(post(client, {"urls": ["http://127.0.0.1:9/a.bin"]}), "url_private")
    settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE = True
    response = post(client, {"urls": "http://127.0.0.1:9/a.bin\n http://127.0.0.1:9/b.bin \n", "connections": "8",
                             "names": "\nsecond.bin"})
    assert response.status_code == 201, response.content
    task = Task.objects.get()
    assert task.params == {"urls": ["http://127.0.0.1:9/a.bin", "http://127.0.0.1:9/b.bin"],
                           "names": [None, "second.bin"], "connections": 8}
    assert task.title == "a.bin (+1)" and task.kind == "download"


@pytest.mark.parametrize("params, field, words", [
    ({}, "urls", "at least one URL"),
    ({"urls": []}, "urls", "at least one URL"),
    ({"urls": " \n \n"}, "urls", "at least one URL"),
    ({"urls": 5}, "urls", "one per line"),
    ({"urls": ["http://127.0.0.1/a", "http://127.0.0.1/a"]}, "urls.1", "listed twice"),
    ({"urls": ["http://127.0.0.1/a", None]}, "urls.1", "not a valid URL"),
    ({"urls": ["http://127.0.0.1/a"], "names": ["a", "b"]}, "names", "more names"),
    ({"urls": ["http://127.0.0.1/a"], "names": [".."]}, "names.0", "cannot be used as a file name"),
    ({"urls": ["http://127.0.0.1/a"], "names": ["x.aria2"]}, "names.0", "cannot be used as a file name"),
    ({"urls": ["http://127.0.0.1/a"], "names": [7]}, "names.0", "must be text"),
    ({"urls": ["http://127.0.0.1/a"], "connections": 0}, "connections", "from 1 to 16"),
    ({"urls": ["http://127.0.0.1/a"], "connections": 17}, "connections", "from 1 to 16"),
    ({"urls": ["http://127.0.0.1/a"], "connections": True}, "connections", "from 1 to 16"),
    ({"urls": ["http://127.0.0.1/a"], "connections": "many"}, "connections", "from 1 to 16"),
    ({"urls": ["http://127.0.0.1/a"], "dir": "/etc"}, "dir", "Unknown parameter: dir"),
    ({"urls": ["http://127.0.0.1/a"], "ruleGroup": "x"}, "ruleGroup", "JSON object"),
])
def test_it_refuses_bad_parameters_naming_them(db, alice, settings, params, field, words):
    settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE = True
    client = Client()
    client.force_login(alice)
    response = post(client, params)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["field"] == field and words in error["message"], error
    assert Task.objects.count() == 0


def test_it_limits_the_batch_size(db, alice, settings):
    settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE = True
    settings.MEDIACRAFT_DOWNLOAD_MAX_URLS = 3
    client = Client()
    client.force_login(alice)
    urls = [f"http://127.0.0.1/{i}" for i in range(4)]
    response = post(client, {"urls": urls})
    assert response.status_code == 400 and "At most 3 URLs" in response.json()["error"]["message"]
    assert post(client, {"urls": urls[:3]}).status_code == 201


def test_it_takes_no_uploaded_files(db, alice, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE = True
    client = Client()
    client.force_login(alice)
    response = client.post(TASKS, {"kind": "download", "params": json.dumps({"urls": ["http://127.0.0.1/a"]}),
                                   "files": [SimpleUploadedFile("a.mp4", b"x")]})
    assert response.status_code == 400 and response.json()["error"]["field"] == "files"
    assert Task.objects.count() == 0


class FakeRpc:
    """Just enough of aria2p.Client for Attempt.check_servers and downloads.aria2.remove."""

    TELL_STATUS = "aria2.tellStatus"

    def __init__(self, servers):
        self.servers = servers
        self.removed = []
        self.forgotten = []

    def get_servers(self, gid):
        return [{"index": "1", "servers": [{"currentUri": uri} for uri in self.servers[gid]]}]

    def force_remove(self, gid):
        self.removed.append(gid)
        return gid

    def multicall2(self, calls):
        return [[{"gid": params[0], "status": "removed"}] for _method, params in calls]

    def remove_download_result(self, gid):
        self.forgotten.append(gid)
        return "OK"


def test_it_stops_a_download_redirected_to_a_private_address(db, alice, tmp_path, monkeypatch):
    """aria2 follows redirects itself; the run watches where each download really went."""
    from types import SimpleNamespace

    from tasks.processors.download import Attempt

    monkeypatch.setattr(policy.socket, "getaddrinfo", fake_dns({"media.example.com": ["93.184.216.34"],
                                                                "cdn.example.com": ["93.184.216.35"]}))
    urls = ["https://media.example.com/a.mp4", "https://media.example.com/b.mp4"]
    ctx = SimpleNamespace(params={"urls": urls, "names": [None, None], "connections": 2}, output_dir=tmp_path,
                          owner_id=alice.pk, task_id="t")
    rpc = FakeRpc({"g1": [urls[0], "http://10.0.0.9/internal"], "g2": [urls[1], "https://cdn.example.com/b.mp4"]})
    attempt = Attempt(ctx, rpc)
    attempt.running = {"g1": 0, "g2": 1}
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "a.mp4").write_bytes(b"partial")
    attempt.check_servers()
    assert attempt.running == {"g2": 1}
    assert rpc.removed == ["g1"] and rpc.forgotten == ["g1"]
    assert attempt.failed[0]["error_code"] == "url_private" and "10.0.0.9" in attempt.failed[0]["error"]
    assert not (tmp_path / "0").exists()  # its partial file went with it
    assert attempt.checked_uris == {"https://cdn.example.com/b.mp4"}


def test_it_never_makes_up_an_eta():
    from tasks.processors.download import progress_stats

    unknown = progress_stats(total_files=2, kept_sizes=[], done_sizes=[], failed=0, active=[
        {"status": "active", "totalLength": "0", "completedLength": "500", "downloadSpeed": "100"},
        {"status": "active", "totalLength": "1000", "completedLength": "500", "downloadSpeed": "100"},
    ])
    assert unknown["eta_seconds"] is None and unknown["download_speed"] == 200
    assert unknown["progress_percent"] == 25.0  # by files while a length is unknown
    assert unknown["total_size"] == 1000 and unknown["downloaded_size"] == 1000
    known = progress_stats(total_files=3, kept_sizes=[300], done_sizes=[200], failed=0, active=[
        {"status": "active", "totalLength": "1000", "completedLength": "250", "downloadSpeed": "250"},
    ])
    assert known == {"total_files": 3, "completed_files": 2, "failed_files": 0, "active_files": 1,
                     "total_size": 1500, "downloaded_size": 750, "progress_percent": 50.0,
                     "download_speed": 250, "eta_seconds": 3}
    stalled = progress_stats(total_files=1, kept_sizes=[], done_sizes=[], failed=0, active=[
        {"status": "waiting", "totalLength": "1000", "completedLength": "0", "downloadSpeed": "0"}])
    assert stalled["eta_seconds"] is None and stalled["active_files"] == 0
    done = progress_stats(total_files=2, kept_sizes=[10], done_sizes=[], failed=1, active=[])
    assert done["eta_seconds"] == 0 and done["progress_percent"] == 100.0


def test_it_offers_a_page_form_held_to_the_same_policy(db, alice, settings):
    settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE = True
    client = Client()
    client.force_login(alice)
    page = client.get("/new/download/")
    assert page.status_code == 200 and b"Connections per server" in page.content
    form = {"download-urls": "http://127.0.0.1:9/a.bin\nfile:///etc/passwd", "download-connections": "4",
            "download-priority": "5"}
    refused_page = client.post("/new/download/", form)
    assert refused_page.status_code == 400 and b"only http, https and ftp" in refused_page.content
    assert Task.objects.count() == 0
    form.update({"download-urls": "http://127.0.0.1:9/a.bin", "download-names": "mine.bin"})
    assert client.post("/new/download/", form).status_code == 302
    assert Task.objects.get().params == {"urls": ["http://127.0.0.1:9/a.bin"], "names": ["mine.bin"], "connections": 4}
