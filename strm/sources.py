"""Where a sync reads from: a WebDAV folder (raw PROPFIND Depth: 1 over httpx, one folder per
request) or a local folder (os.scandir). Both give, per folder, its files and subfolders with
paths already decoded and checked, so nothing a source returns can name a path outside it.

Imported inside the job only (httpx, defusedxml)."""

import errno
import logging
import os
import re
import time
from email.utils import parsedate_to_datetime
from typing import NamedTuple
from urllib.parse import quote, unquote_to_bytes, urljoin, urlsplit

from mediacraft.numbers import parse_digits
from strm import paths

log = logging.getLogger(__name__)

PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/>'
    b"<D:getlastmodified/><D:getetag/></D:prop></D:propfind>"
)
DAV = "{DAV:}"
RETRY_DELAYS = (0.5, 1.5, 3.0)
RETRY_STATUSES = (429, 500, 502, 503, 504)
CHUNK = 256 * 1024


class Folder(NamedTuple):
    parts: tuple  # path below the source root, one decoded name per level
    locator: str  # the folder's URL as the server encodes it, or its absolute local path


class FileEntry(NamedTuple):
    name: str
    size: int | None
    mtime_ns: int | None
    etag: str
    locator: str


class Listing(NamedTuple):
    files: list
    folders: list
    rejected: list  # (path, reason): names no file can be written for; never listed again
    failed: list  # (path, reason): entries that could not be read: the listing is incomplete


class ListingError(Exception):
    """A folder could not be listed: the listing is incomplete, so nothing may be deleted."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class FetchError(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class SourceError(Exception):
    """The source as a whole is unusable (wrong password, missing folder): the sync stops."""

    def __init__(self, code, params=None, detail="", retryable=False):
        super().__init__(code)
        self.code = code
        self.params = params or {}
        self.detail = detail
        self.retryable = retryable


def skipped_name(name):
    """Hidden entries (.DS_Store, ._AppleDouble, .recycle) and NAS thumbnail folders are never synced."""
    return name.startswith(".") or name == "@eaDir"


def decode_segment(raw):
    """A percent-encoded URL path segment as text; None if it is not UTF-8."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


def url_segments(path):
    """'/dav/a%20b/' -> ['dav', 'a b'] (None for a segment that is not UTF-8)."""
    return [decode_segment(s) for s in path.split("/") if s]


def requote(href):
    """Encode what a careless server leaves raw in an href (spaces, '#', '?', non-ASCII) while
    keeping its own escapes, so urljoin cannot mistake a file name for a fragment or a query."""
    return quote(href, safe="/%:@!$&'()*+,;=~[]")


PLAIN_HREF = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")


def href_path(base, href):
    """The percent-encoded path an href names, resolved against the folder's URL (only the
    path: a server cannot send us to another host)."""
    if not PLAIN_HREF.fullmatch(href):
        href = requote(href)
    if href.startswith("/") and "/." not in href:
        return href  # the common case, without urljoin's cost
    return urlsplit(urljoin(base, href)).path


def http_date_ns(value):
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value.strip()).timestamp()) * 1_000_000_000
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def clean_etag(value):
    value = (value or "").strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')[:200]


class WebDavSource:
    is_url = True

    def __init__(self, *, url, username="", password="", concurrency=4, timeout=60.0):
        import httpx

        logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per folder in the worker's log
        self.httpx = httpx
        self.root_url = paths.normalise_url(url)
        if not self.root_url.endswith("/"):
            self.root_url += "/"
        root = urlsplit(self.root_url)
        self.origin_prefix = f"{root.scheme}://{root.netloc}"
        self.root_segments = url_segments(root.path)
        self.username, self.password = username, password
        self.client = httpx.Client(
            auth=httpx.BasicAuth(username, password) if username else None,
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=concurrency * 2 + 2, max_keepalive_connections=concurrency * 2 + 2),
            follow_redirects=True,
            trust_env=False,
            headers={"User-Agent": "MediaCraft-STRM/1"},
        )

    def close(self):
        self.client.close()

    def describe(self):
        return self.root_url

    def root(self):
        return Folder((), self.root_url)

    # --- listing ------------------------------------------------------------------------------

    def _propfind(self, folder):
        is_root = not folder.parts
        last = ""
        for attempt in range(len(RETRY_DELAYS) + 1):
            if attempt:
                time.sleep(RETRY_DELAYS[attempt - 1])
            try:
                response = self.client.request(
                    "PROPFIND", folder.locator, content=PROPFIND_BODY,
                    headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
                )
            except self.httpx.HTTPError as exc:  # connection refused, reset, timeouts, protocol errors
                last = f"{type(exc).__name__}: {exc}".strip(": ")
                continue
            status = response.status_code
            if status == 401 and self._switch_to_digest(response):
                continue
            if status in (401, 403):
                raise SourceError("strm_source_auth", {"status": status}, detail=f"PROPFIND {folder.locator}")
            if status == 207:
                return response
            last = f"HTTP {status}"
            if status in RETRY_STATUSES:
                continue
            if is_root and status == 404:
                raise SourceError("strm_source_missing", {"path": self.root_url}, detail=last)
            if is_root:
                raise SourceError("strm_source_invalid", {"status": status}, detail=f"PROPFIND {self.root_url}: {last}")
            raise ListingError(last)
        if is_root:
            raise SourceError("strm_source_unreachable", {"reason": last[:200]}, detail=self.root_url, retryable=True)
        raise ListingError(last)

    def _switch_to_digest(self, response):
        """A server that wants Digest authentication gets it (once): basic is sent first because
        it costs no extra round trip."""
        offered = " ".join(response.headers.get_list("WWW-Authenticate")).lower()
        if not self.username or "digest" not in offered or "basic" in offered:
            return False
        if isinstance(self.client.auth, self.httpx.DigestAuth):
            return False
        self.client.auth = self.httpx.DigestAuth(self.username, self.password)
        return True

    def list_folder(self, folder):
        from defusedxml import ElementTree
        from defusedxml.common import DefusedXmlException

        response = self._propfind(folder)
        here = url_segments(urlsplit(str(response.url)).path)
        depth = len(self.root_segments)
        if here[:depth] != self.root_segments or None in here:
            raise ListingError("the server redirected the listing outside the source")
        try:
            tree = ElementTree.fromstring(response.content)
        except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
            raise ListingError(f"unreadable PROPFIND answer: {exc}") from None
        base = str(response.url)
        files, folders, rejected, failed = [], [], [], []
        shown = "/".join(folder.parts)
        decoded = {}  # raw parent path -> its decoded segments: decoded once per folder, not per entry
        for item in tree.iter(f"{DAV}response"):
            href = (item.findtext(f"{DAV}href") or "").strip()
            if not href:
                continue
            path = href_path(base, href)
            parent_raw, _slash, name_raw = path.rstrip("/").rpartition("/")
            parent = decoded.get(parent_raw)
            if parent is None:
                parent = decoded[parent_raw] = url_segments(parent_raw)
            segments = [*parent, decode_segment(name_raw)] if name_raw else list(parent)
            if segments == here:
                continue  # the folder's own entry
            if None in segments:
                rejected.append((f"{shown}/{href}".lstrip("/"), "name is not valid UTF-8"))
                continue
            if segments[:len(here)] != here or len(segments) != len(here) + 1:
                if segments[:depth] != self.root_segments:
                    rejected.append((href, "outside the source folder"))
                continue  # a deeper entry from a server that ignores Depth: 1; listed with its folder
            name = segments[-1]
            rel = f"{shown}/{name}".lstrip("/")
            if not paths.safe_name(name) or name.strip() == "":
                rejected.append((rel, "unsafe file name"))
                continue
            if skipped_name(name):
                continue
            prop = None
            for propstat in item.findall(f"{DAV}propstat"):
                status = (propstat.findtext(f"{DAV}status") or "").split()
                if len(status) >= 2 and status[1] == "200":
                    prop = propstat.find(f"{DAV}prop")
                    break
            if prop is None:
                failed.append((rel, "the server sent no properties for it"))
                continue
            # The server's own encoding of the path, on our origin: a server cannot send us elsewhere.
            locator = self.origin_prefix + path
            if prop.find(f"{DAV}resourcetype/{DAV}collection") is not None:
                folders.append(Folder((*folder.parts, name), locator if locator.endswith("/") else locator + "/"))
                continue
            length = (prop.findtext(f"{DAV}getcontentlength") or "").strip()
            files.append(FileEntry(
                name, parse_digits(length),
                http_date_ns(prop.findtext(f"{DAV}getlastmodified")), clean_etag(prop.findtext(f"{DAV}getetag")),
                locator,
            ))
        return Listing(files, folders, rejected, failed)

    # --- sidecars -----------------------------------------------------------------------------

    def copy_to(self, entry, fd, max_bytes):
        """Write the file's bytes to fd; retry transient errors from the start."""
        last = ""
        for attempt in range(len(RETRY_DELAYS) + 1):
            if attempt:
                time.sleep(RETRY_DELAYS[attempt - 1])
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
            try:
                with self.client.stream("GET", entry.locator) as response:
                    if response.status_code in (401, 403):
                        raise SourceError("strm_source_auth", {"status": response.status_code},
                                          detail=f"GET {entry.locator}")
                    if response.status_code != 200:
                        last = f"HTTP {response.status_code}"
                        if response.status_code in RETRY_STATUSES:
                            continue
                        raise FetchError(last)
                    total = 0
                    for chunk in response.iter_bytes(CHUNK):
                        total += len(chunk)
                        if total > max_bytes:
                            raise FetchError(f"larger than the sidecar limit of {max_bytes // (1024 * 1024)} MB")
                        os.write(fd, chunk)
                    return total
            except self.httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}".strip(": ")
        raise FetchError(last)


class LocalSource:
    is_url = False

    def __init__(self, *, path, roots):
        self.path = os.path.realpath(path)
        self.roots = roots  # a linked file is read only if it resolves inside one of these

    def close(self):
        pass

    def describe(self):
        return self.path

    def root(self):
        if not os.path.isdir(self.path):
            raise SourceError("strm_source_missing", {"path": self.path})
        return Folder((), self.path)

    def list_folder(self, folder):
        files, folders, rejected, failed = [], [], [], []
        shown = "/".join(folder.parts)
        try:
            scanner = os.scandir(folder.locator)
        except OSError as exc:
            raise ListingError(exc.strerror or str(exc)) from None
        with scanner:
            while True:
                try:
                    item = next(scanner, None)
                except OSError as exc:
                    raise ListingError(exc.strerror or str(exc)) from None
                if item is None:
                    break
                name = item.name  # the OS guarantees a plain name: no '/', NUL, '.' or '..'
                if skipped_name(name):
                    continue
                if not name.isascii():
                    try:
                        name.encode("utf-8")
                    except UnicodeEncodeError:
                        rel = f"{shown}/{name}".lstrip("/")
                        rejected.append((rel.encode("utf-8", "backslashreplace").decode(), "name is not valid UTF-8"))
                        continue
                try:
                    if item.is_dir(follow_symlinks=False):
                        folders.append(Folder((*folder.parts, name), item.path))
                        continue
                    if not item.is_file():  # sockets, devices, broken links; linked folders are not followed
                        continue
                    if item.is_symlink():
                        real = os.path.realpath(item.path)
                        if not any(paths.within(real, root) for root in self.roots):
                            rejected.append((f"{shown}/{name}".lstrip("/"), "a link leading outside the allowed folders"))
                            continue
                    st = item.stat()
                except FileNotFoundError:
                    continue  # removed while we looked
                except OSError as exc:
                    failed.append((f"{shown}/{name}".lstrip("/"), exc.strerror or str(exc)))
                    continue
                files.append(FileEntry(name, st.st_size, st.st_mtime_ns, "", item.path))
        return Listing(files, folders, rejected, failed)

    def copy_to(self, entry, fd, max_bytes):
        try:
            src = os.open(entry.locator, os.O_RDONLY)
        except OSError as exc:
            raise FetchError(exc.strerror or str(exc)) from None
        try:
            if os.fstat(src).st_size > max_bytes:
                raise FetchError(f"larger than the sidecar limit of {max_bytes // (1024 * 1024)} MB")
            total, use_sendfile = 0, True
            while True:
                if use_sendfile:
                    try:
                        sent = os.sendfile(fd, src, None, CHUNK * 4)
                    except OSError as exc:
                        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
                            raise
                        use_sendfile = False  # a file system without sendfile
                        continue
                else:
                    chunk = os.read(src, CHUNK)
                    sent = len(chunk)
                    while chunk:
                        chunk = chunk[os.write(fd, chunk):]
                if not sent:
                    return total
                total += sent
        except OSError as exc:
            raise FetchError(exc.strerror or str(exc)) from None
        finally:
            os.close(src)
