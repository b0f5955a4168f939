"""Which URLs a download may fetch: http, https and ftp only, to public addresses only (unless
MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE), so a visitor cannot make the server reach its own loopback,
its private network or a cloud metadata service.

Checked when a task is submitted, again when it runs (names may resolve differently by then), and
on the server a download is actually talking to (aria2 follows redirects on its own), as far as
polling can see it. Only a network-level rule (a firewall on the aria2 host) closes every gap:
see the README."""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext_lazy as _

SCHEMES = ("http", "https", "ftp")
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
MAX_URL_LENGTH = 4096

REASONS = {
    "url_invalid": _("%(url)s is not a valid URL."),
    "url_too_long": _("A URL is longer than %(limit)s characters."),
    "url_scheme": _("%(url)s cannot be downloaded: only http, https and ftp URLs can."),
    "url_unresolved": _("The host %(host)s of %(url)s cannot be resolved."),
    "url_private": _("%(url)s leads to %(address)s, a loopback, private, link-local or otherwise non-public "
                     "address, which downloads may not reach."),
}


class UrlRefused(Exception):
    """A URL the policy refuses: `code` (a key of REASONS) and its parameters."""

    def __init__(self, code, **params):
        super().__init__(code)
        self.code = code
        self.params = params

    @property
    def message(self):
        return REASONS[self.code] % self.params

    def technical(self):
        """Untranslated, for a task's result (workers never produce translated text)."""
        return f"{self.code}: " + ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()) if k != "url")


def public_address(address):
    """True for an address a download may reach: a global unicast address (IPv4 inside IPv6
    forms judged as the IPv4 address they carry)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast


def shown(url, limit=200):
    return url if len(url) <= limit else url[: limit - 1] + "…"


def check_url(url, *, allow_private=None, resolve=None):
    """Return the URL stripped of surrounding blanks, or raise UrlRefused."""
    if allow_private is None:
        allow_private = settings.MEDIACRAFT_DOWNLOAD_ALLOW_PRIVATE
    if not isinstance(url, str):
        raise UrlRefused("url_invalid", url=shown(str(url)))
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused("url_too_long", limit=MAX_URL_LENGTH)
    if not url or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise UrlRefused("url_invalid", url=shown(url))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("url_invalid", url=shown(url)) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UrlRefused("url_scheme", url=shown(url))
    host = parts.hostname
    if not host:
        raise UrlRefused("url_invalid", url=shown(url))
    if allow_private:
        return url
    try:
        found = addresses(host, port or DEFAULT_PORTS[scheme], resolve=resolve)
    except UrlRefused as exc:
        exc.params["url"] = shown(url)
        raise
    for address in found:
        if not public_address(address):
            raise UrlRefused("url_private", url=shown(url), address=address)
    return url


def addresses(host, port, *, resolve=None):
    """Every address the host name stands for (an address literal stands for itself)."""
    try:
        return [str(ipaddress.ip_address(host.split("%", 1)[0]))]
    except ValueError:
        pass
    resolve = resolve or socket.getaddrinfo
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UrlRefused("url_unresolved", host=host[:100]) from None
    found = sorted({info[4][0] for info in infos})
    if not found:
        raise UrlRefused("url_unresolved", host=host[:100])
    return found
