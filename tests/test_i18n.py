"""Every string a user can see has a Chinese translation, and the committed catalogue is
compiled and current (a fresh machine needs no gettext)."""

import gettext
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")


ENTRY_RE = re.compile(
    r'^((?:#.*\n)*)(?:msgctxt ((?:".*"\n)+))?msgid ((?:".*"\n)+)(?:msgid_plural (?:".*"\n)+)?((?:msgstr(?:\[\d+\])? (?:".*"\n?)+)+)', re.M
)


def unquote(chunk):
    text = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', chunk or ""))
    return text.encode().decode("unicode_escape").encode("latin-1").decode("utf-8")


def entries(path):
    """(msgid, msgstr-list, flags) of each entry but the header; a msgid with a context (pgettext)
    as "context\x04msgid", the key it has in the compiled catalogue."""
    found = []
    for match in ENTRY_RE.finditer(path.read_text(encoding="utf-8")):
        comments, context, msgid, strs = match.groups()
        if unquote(msgid) == "":
            continue
        key = unquote(msgid) if context is None else f"{unquote(context)}\x04{unquote(msgid)}"
        values = [unquote(s) for s in re.findall(r'msgstr(?:\[\d+\])? ((?:".*"\n?)+)', strs)]
        flags = " ".join(re.findall(r"^#, (.*)$", comments, re.M))
        found.append((key, values, flags))
    return found


def test_it_translates_every_msgid():
    untranslated = [mid for mid, strs, flags in entries(PO) if not all(strs) or "fuzzy" in flags]
    assert untranslated == []


def test_it_ships_a_compiled_catalogue_matching_the_source():
    catalogue = gettext.GNUTranslations(MO.open("rb"))
    for msgid, strs, _flags in entries(PO):
        if len(strs) == 1:
            assert catalogue.gettext(msgid) == strs[0], msgid


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="xgettext (gettext) is not installed")
def test_its_catalogue_holds_every_msgid_of_the_code_and_no_other(tmp_path):
    for name in ("mediacraft", "tasks", "users", "templates", "storage", "strm", "downloads", "torrents"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "locale").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    subprocess.run([sys.executable, "-m", "django", "makemessages", "-l", "zh_Hans", "--no-location"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    fresh = {mid for mid, _s, _f in entries(tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po")}
    committed = {mid for mid, _s, _f in entries(PO)}
    assert sorted(fresh - committed) == [], "run make messages, translate, make messages"
    assert sorted(committed - fresh) == [], "no code uses these any more: run make messages (it marks them obsolete)"


def test_it_translates_the_video_time_range_as_from_and_until():
    from django.utils import translation

    with translation.override("zh-hans"):
        # "To second" once read 超时（秒）, "timeout (seconds)": the end of the range, not a limit.
        assert translation.gettext("From second") == "开始于（秒）"
        assert translation.gettext("To second") == "结束于（秒）"
