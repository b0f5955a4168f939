"""Pure helpers shared by the profile's validation and the sync: the allowed roots, safe relative
paths, extension lists, the ignore pattern and the URL written into each .strm file."""

import os
import re
import string
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

DEFAULT_MEDIA_EXTENSIONS = "mkv mp4 avi ts m2ts mts iso mov wmv flv webm rmvb rm m4v mpg mpeg vob 3gp divx"
DEFAULT_SIDECAR_EXTENSIONS = "srt ass ssa sub idx vtt sup nfo jpg jpeg png webp bmp gif tbn"
URL_PLACEHOLDERS = ("source_url", "base", "path", "raw_path")
MAX_SEGMENT_BYTES = 255
TEMP_PREFIX = ".mcsync-"
TEMP_SUFFIX = ".tmp"


# --- allowed roots --------------------------------------------------------------------------

def allowed_roots():
    return [os.path.realpath(r) for r in settings.MEDIACRAFT_STRM_ROOTS]


def within(path, root):
    """Whether the real path `path` is `root` or below it (both already resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def confine(value):
    """Resolve an absolute folder path and return it if it lies inside one of the allowed roots;
    raise ValidationError naming the problem otherwise. Symbolic links are resolved first, so a
    link cannot lead out of a root."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(_("Enter a folder path."))
    if "\x00" in value:
        raise ValidationError(_("The path contains a NUL byte."))
    if not os.path.isabs(value):
        raise ValidationError(_("%(path)s is not an absolute path.") % {"path": value})
    roots = allowed_roots()
    if not roots:
        raise ValidationError(_("No folder is allowed: the administrator must set MEDIACRAFT_STRM_ROOTS."))
    real = os.path.realpath(value)
    if not any(within(real, root) for root in roots):
        raise ValidationError(
            _("%(path)s is outside the allowed folders (%(roots)s).") % {"path": value, "roots": ", ".join(roots)}
        )
    return real


def overlaps(a, b):
    return within(a, b) or within(b, a)


# --- relative paths -------------------------------------------------------------------------

def safe_name(name):
    """A single path segment that cannot climb or escape: no separators, no '.', '..', NUL."""
    return (
        bool(name) and name not in (".", "..") and "/" not in name and "\x00" not in name
        and len(os.fsencode(name)) <= MAX_SEGMENT_BYTES
    )


def is_temp_name(name):
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


# --- extensions -----------------------------------------------------------------------------

def parse_extensions(text):
    """'mkv, .MP4 ts' -> ('mkv', 'mp4', 'ts'); raise ValidationError on a malformed item."""
    items = []
    for raw in re.split(r"[\s,;]+", text or ""):
        item = raw.strip().lstrip(".").lower()
        if not item:
            continue
        if not re.fullmatch(r"[0-9a-z_\-+]{1,16}", item):
            raise ValidationError(_("%(ext)s is not a valid file extension.") % {"ext": raw})
        if item not in items:
            items.append(item)
    return tuple(items)


def extension_of(name):
    dot = name.rfind(".")
    return name[dot + 1:].lower() if dot > 0 else ""


# --- ignore pattern -------------------------------------------------------------------------

def _glob_to_regex(glob):
    out, i, n = [], 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            if glob.startswith("**", i):
                out.append(".*")
                i += 2
                if i < n and glob[i] == "/":
                    out[-1] = "(?:.*/)?"
                    i += 1
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = glob.find("]", i + 2 if glob[i + 1:i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = glob[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\").replace("/", "") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_ignore(text):
    """Compile the ignore pattern (one glob per line, '#' comments) into a function telling
    whether a path relative to the target is protected. Like .gitignore: a pattern without '/'
    matches a file or folder name at any depth, one with '/' matches from the target's top,
    '**' crosses folders, and a folder's match protects everything inside it."""
    parts = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        raw = line.strip()
        if not raw or raw.startswith("#"):
            continue
        directory_only = raw.endswith("/")
        core = raw.rstrip("/")
        anchored = "/" in core
        core = core.lstrip("/")
        if not core:
            raise ValidationError(_("Line %(line)s of the ignore pattern matches nothing.") % {"line": number})
        body = _glob_to_regex(core)
        prefix = "" if anchored else "(?:.*/)?"
        suffix = "/.*" if directory_only else "(?:/.*)?"
        regex = prefix + body + suffix
        try:
            re.compile(regex)
        except re.error:
            raise ValidationError(_("Line %(line)s of the ignore pattern is not a valid pattern.") % {"line": number}) from None
        parts.append(regex)
    if not parts:
        return lambda path: False
    matcher = re.compile("(?:" + "|".join(parts) + ")", re.DOTALL)
    return lambda path: matcher.fullmatch(path) is not None


# --- the URL written into a .strm file ------------------------------------------------------

def encode_segment(name):
    """Percent-encode one path segment completely (RFC 3986 unreserved characters stay),
    from its bytes, so spaces, '#', '%', '&', quotes and any script survive."""
    return quote(os.fsencode(name), safe="")


def normalise_url(url):
    """The source URL as typed, with characters that cannot appear raw in a URL path encoded
    (existing %XX escapes are kept) and without credentials, query or fragment."""
    parts = urlsplit(url.strip())
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme.lower(), netloc, path, "", ""))


def with_credentials(url, username, password):
    if not username:
        return url
    parts = urlsplit(url)
    userinfo = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit((parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, "", ""))


def check_template(template):
    """Raise ValidationError unless the template uses only known placeholders, plainly."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        raise ValidationError(_("The .strm template has an unbalanced { or }.")) from None
    used = set()
    for _literal, field, spec, conversion in fields:
        if field is None:
            continue
        if field not in URL_PLACEHOLDERS or spec or conversion:
            raise ValidationError(
                _("Unknown placeholder {%(name)s} in the .strm template; use %(allowed)s.")
                % {"name": field, "allowed": ", ".join("{%s}" % p for p in URL_PLACEHOLDERS)}
            )
        used.add(field)
    if not used & {"source_url", "path", "raw_path"}:
        raise ValidationError(_("The .strm template must contain {source_url}, {path} or {raw_path}."))


class StrmRenderer:
    """Builds the bytes of each .strm file. `base` is the custom base URL, or the source's URL
    (WebDAV) or folder (local); {source_url} is the file's own URL or absolute path."""

    def __init__(self, *, template, base, source_base, source_is_url):
        self.template = template
        self.base = base.rstrip("/")
        self.source_base = source_base.rstrip("/") if source_is_url else source_base.rstrip(os.sep)
        self.source_is_url = source_is_url
        self.uses = {field for _l, field, _s, _c in string.Formatter().parse(template) if field}

    def folder_prefixes(self, folder_parts):
        """Per-folder pieces, computed once for all the files of a folder."""
        encoded = "".join(encode_segment(p) + "/" for p in folder_parts)
        raw = "".join(p + "/" for p in folder_parts)
        return encoded, raw

    def render(self, prefixes, name):
        encoded_dir, raw_dir = prefixes
        values = {"base": self.base}
        if "path" in self.uses or ("source_url" in self.uses and self.source_is_url):
            values["path"] = encoded_dir + encode_segment(name)
        if "raw_path" in self.uses or ("source_url" in self.uses and not self.source_is_url):
            values["raw_path"] = raw_dir + name
        if "source_url" in self.uses:
            if self.source_is_url:
                values["source_url"] = f"{self.source_base}/{values['path']}"
            else:
                values["source_url"] = f"{self.source_base}/{values['raw_path']}"
        return self.template.format_map(values).encode("utf-8", "surrogateescape")
