"""What calibration accepts: BitTorrent v1 info hashes (40 hex digits, or 32 base32 letters in a
magnet link), v2 info hashes (64 hex digits) and magnet links carrying either or both."""

import base64
import binascii
import dataclasses
import re
from urllib.parse import parse_qsl, urlsplit

from django.utils.translation import gettext as _

from tasks.errors import InvalidParams

MAX_ENTRIES = 100
MAX_MAGNET = 8192
HEX40 = re.compile(r"[0-9a-fA-F]{40}")
HEX64 = re.compile(r"[0-9a-fA-F]{64}")
BASE32 = re.compile(r"[A-Za-z2-7]{32}")
SEPARATORS = re.compile(r"\s+")


@dataclasses.dataclass(frozen=True)
class TorrentRef:
    """One entry: its text as stored, its info hashes (lowercase hex) and its magnet link, if any."""

    text: str
    v1: str | None = None
    v2: str | None = None
    magnet: str | None = None
    display_name: str = ""

    @property
    def info_hash(self):
        return self.v1 or self.v2

    @property
    def keys(self):
        return {h for h in (self.v1, self.v2) if h}

    @property
    def qbt_ids(self):
        """The ids qBittorrent may know this torrent by: the truncated v2 hash when the torrent
        has one (libtorrent's "best" hash), else the v1 hash."""
        return [h for h in (self.v2[:40] if self.v2 else None, self.v1) if h]

    def matches(self, info):
        """Whether a torrents/info item is this torrent."""
        hashes = {str(info.get(k) or "").lower() for k in ("hash", "infohash_v1", "infohash_v2")}
        return bool(self.keys & hashes) or (self.v2 is not None and self.v2[:40] == str(info.get("hash", "")).lower())


class BadRef(ValueError):
    pass


def parse_ref(text):
    """A TorrentRef from one entry, or BadRef with a translated reason."""
    if HEX40.fullmatch(text):
        return TorrentRef(text=text.lower(), v1=text.lower())
    if HEX64.fullmatch(text):
        return TorrentRef(text=text.lower(), v2=text.lower())
    if text[:7].lower() == "magnet:":
        return _parse_magnet(text)
    raise BadRef(_("it is not a 40- or 64-character hexadecimal info hash or a magnet link"))


def _parse_magnet(text):
    if len(text) > MAX_MAGNET:
        raise BadRef(_("the magnet link is longer than %(max)s characters") % {"max": MAX_MAGNET})
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise BadRef(_("the magnet link contains spaces or control characters"))
    parts = urlsplit(text)
    if parts.scheme.lower() != "magnet" or parts.netloc or parts.path:
        raise BadRef(_("it is not a magnet:? link"))
    v1s, v2s, names = set(), set(), []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        key = key.lower()
        if key == "dn":
            names.append(value)
        elif key == "xt" or (key.startswith("xt.") and key[3:].isdigit()):
            lowered = value.lower()
            if lowered.startswith("urn:btih:"):
                digest = value[9:]
                if HEX40.fullmatch(digest):
                    v1s.add(digest.lower())
                elif BASE32.fullmatch(digest):
                    try:
                        v1s.add(base64.b32decode(digest.upper()).hex())
                    except (binascii.Error, ValueError):
                        raise BadRef(_("its v1 info hash is not valid base32")) from None
                else:
                    raise BadRef(_("its urn:btih: info hash is neither 40 hexadecimal digits nor 32 base32 letters"))
            elif lowered.startswith("urn:btmh:"):
                digest = value[9:]
                if not (digest[:4] == "1220" and HEX64.fullmatch(digest[4:])):
                    raise BadRef(_("its urn:btmh: info hash is not 1220 followed by 64 hexadecimal digits"))
                v2s.add(digest[4:].lower())
    if not v1s and not v2s:
        raise BadRef(_("the magnet link has no BitTorrent info hash (xt=urn:btih:… or xt=urn:btmh:1220…)"))
    if len(v1s) > 1 or len(v2s) > 1:
        raise BadRef(_("the magnet link names more than one torrent"))
    return TorrentRef(text=text, v1=next(iter(v1s), None), v2=next(iter(v2s), None), magnet=text,
                      display_name=(names[0] if names else "")[:200])


def clean_refs(value, field="hashes"):
    """Validated, de-duplicated entries (a list, or text with one per line) as their stored texts.
    A magnet link replaces a bare hash of the same torrent; other repeats are dropped."""
    if isinstance(value, str):
        items = [item for item in SEPARATORS.split(value) if item]
    elif isinstance(value, list):
        items = value
    else:
        raise InvalidParams(_("%(field)s must be a list of info hashes or magnet links, or text with one per line.")
                            % {"field": field}, field)
    if not items:
        raise InvalidParams(_("Give at least one info hash or magnet link."), field)
    if len(items) > MAX_ENTRIES:
        raise InvalidParams(_("Give at most %(max)s info hashes or magnet links at once; you gave %(count)s.")
                            % {"max": MAX_ENTRIES, "count": len(items)}, field)
    refs = []
    for index, item in enumerate(items, 1):
        if not isinstance(item, str):
            raise InvalidParams(_("Entry %(index)s is not text.") % {"index": index}, f"{field}.{index - 1}")
        try:
            ref = parse_ref(item.strip())
        except BadRef as exc:
            shown = item.strip()
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise InvalidParams(
                _("Entry %(index)s (%(value)s) is not usable: %(reason)s.") % {"index": index, "value": shown or "''",
                                                                             "reason": exc},
                f"{field}.{index - 1}",
            ) from None
        same = next((i for i, seen in enumerate(refs) if seen.keys & ref.keys), None)
        if same is None:
            refs.append(ref)
        elif ref.magnet and not refs[same].magnet:
            refs[same] = ref
    return [ref.text for ref in refs]
