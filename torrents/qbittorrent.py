"""A small client of qBittorrent's Web API (v2; checked against 4.5 and written for 5.x too).

Plain HTTP through `requests` rather than the qbittorrent-api package: calibration needs seven
calls, and owning them keeps what matters explicit: a timeout on every request, a failed login
(qBittorrent answers 200 "Fails.") told apart from a ban (403) and from an unreachable host, one
re-login when a session expires, both spellings of "add running" (`paused=false` up to 4.x,
`stopped=false` from 5.0; qbittorrent-api drops `is_paused=False`), and no new dependency.
Create one per run (it holds a login session); never at module level."""

import re

DEFAULT_TIMEOUT = (5, 30)  # connect, read (seconds)
METADATA_STATES = {"metaDL", "forcedMetaDL"}
STOPPED_STATES = {"pausedDL", "stoppedDL", "error", "missingFiles"}


class QbtError(Exception):
    """Talking to qBittorrent failed; `code` is a tasks.messages.ERRORS code."""

    code = "qbt_api_error"

    def __init__(self, reason="", *, detail="", status=None, request=""):
        super().__init__(reason or self.code)
        self.reason = reason
        self.detail = detail or reason
        self.status = status
        self.request = request


class QbtUnreachable(QbtError):
    code = "qbt_unreachable"


class QbtLoginFailed(QbtError):
    code = "qbt_login_failed"


class QbtBanned(QbtError):
    code = "qbt_banned"


def short_reason(exc):
    """'Connection refused' rather than a urllib3 repr of three nested exceptions."""
    text = str(exc)
    found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found[-1].strip()[:200]
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return "timed out"
    if "certificate" in text.lower() or "ssl" in type(exc).__name__.lower():
        return "TLS error: " + text[-160:]
    return (type(exc).__name__ + (": " + text[-160:] if text else ""))[:200]


def has_metadata(info):
    if "has_metadata" in info:  # qBittorrent 5.x
        return bool(info["has_metadata"])
    return info.get("state") not in METADATA_STATES and int(info.get("total_size", -1)) >= 0


def is_stopped(info):
    return info.get("state") in STOPPED_STATES


def same_path(a, b):
    def norm(path):
        return str(path or "").replace("\\", "/").rstrip("/")

    return bool(norm(a)) and norm(a) == norm(b)


class QbtClient:
    def __init__(self, url, username="", password="", *, verify=True, timeout=DEFAULT_TIMEOUT):
        import requests

        self.base = url.strip().rstrip("/") + "/api/v2/"
        self.username = username
        self.password = password
        self.timeout = timeout
        self.http = requests.Session()
        self.http.verify = verify
        self.http.headers["User-Agent"] = "MediaCraft calibration"
        self.logged_in = False

    def close(self):
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- transport ------------------------------------------------------------------------------

    def _send(self, method, path, *, params=None, data=None, files=None, timeout=None):
        import requests

        try:
            return self.http.request(method, self.base + path, params=params, data=data, files=files,
                                     timeout=timeout or self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            raise QbtUnreachable(short_reason(exc), detail=f"{method} {self.base}{path}: {exc}", request=path) from None

    def _call(self, method, path, *, ok=(200,), **kwargs):
        answer = self._send(method, path, **kwargs)
        if answer.status_code == 403 and self.logged_in:
            # The session expired (qBittorrent restarted, or its session timeout passed): log in once more.
            self.logged_in = False
            self.login()
            answer = self._send(method, path, **kwargs)
        if answer.status_code == 403:
            raise QbtLoginFailed(
                "qBittorrent requires a login" if not self.username else "the session was refused",
                detail=f"{method} {path}: HTTP 403", status=403, request=path,
            )
        if answer.status_code not in ok:
            raise QbtError(f"HTTP {answer.status_code}", detail=f"{method} {path}: HTTP {answer.status_code}: "
                           f"{answer.text[:300]}", status=answer.status_code, request=path)
        return answer

    def _json(self, answer, path):
        try:
            return answer.json()
        except ValueError:
            raise QbtError("not JSON", detail=f"{path}: expected JSON, got {answer.text[:200]!r}",
                           status=answer.status_code, request=path) from None

    # --- API ------------------------------------------------------------------------------------

    def login(self):
        """Log in (nothing to do without a username: qBittorrent bypasses authentication for us,
        which the first call checks)."""
        if not self.username:
            return
        answer = self._send("POST", "auth/login", data={"username": self.username, "password": self.password})
        if answer.status_code == 403:
            raise QbtBanned("banned", detail=f"auth/login: HTTP 403: {answer.text[:300]}", status=403,
                            request="auth/login")
        if answer.status_code != 200:
            raise QbtError(f"HTTP {answer.status_code}", detail=f"auth/login: HTTP {answer.status_code}: "
                           f"{answer.text[:300]}", status=answer.status_code, request="auth/login")
        if answer.text.strip() != "Ok.":
            raise QbtLoginFailed("refused", detail=f"auth/login answered {answer.text[:100]!r}", request="auth/login")
        self.logged_in = True

    def version(self):
        return self._call("GET", "app/version").text.strip()

    def api_version(self):
        return self._call("GET", "app/webapiVersion").text.strip()

    def default_save_path(self):
        return self._call("GET", "app/defaultSavePath").text.strip()

    def torrents(self, ids=None):
        """torrents/info, all of them or those with these ids."""
        params = {"hashes": "|".join(ids)} if ids else None
        return self._json(self._call("GET", "torrents/info", params=params), "torrents/info")

    def files(self, torrent_id):
        """The torrent's files, or None when qBittorrent does not know it (404)."""
        answer = self._call("GET", "torrents/files", params={"hash": torrent_id}, ok=(200, 404))
        if answer.status_code == 404:
            return None
        return self._json(answer, "torrents/files")

    def add_probe(self, magnet, save_path):
        """Add a magnet link so that it fetches its metadata and downloads nothing: running (a
        stopped magnet never fetches metadata), stopping by itself once the metadata is there
        (stopCondition, qBittorrent 4.5+), with its original layout in `save_path`, outside any
        category's automatic management. True if qBittorrent took it; False ("Fails.") if it
        refused it or already has the torrent."""
        fields = {
            "urls": magnet, "savepath": save_path, "paused": "false", "stopped": "false",
            "stopCondition": "MetadataReceived", "autoTMM": "false", "contentLayout": "Original",
        }
        answer = self._call("POST", "torrents/add", data=fields, ok=(200, 409, 415))
        return answer.status_code == 200 and answer.text.strip() == "Ok."

    def force_start(self, ids):
        """Force-started torrents skip qBittorrent's queue, so a probe fetches metadata even when
        the queue is full."""
        self._call("POST", "torrents/setForceStart", data={"hashes": "|".join(ids), "value": "true"})

    def delete(self, ids, *, delete_files):
        self._call("POST", "torrents/delete",
                   data={"hashes": "|".join(ids), "deleteFiles": "true" if delete_files else "false"})
