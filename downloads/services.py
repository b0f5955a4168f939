"""Writes for seed 001's endpoints: its submit body becomes a `download` task."""

import re

from django.utils.translation import gettext as _

from tasks import services as task_services
from tasks.errors import ApiError, InvalidParams
from tasks.models import TaskKind

# Seed 001's TaskSubmitRequest: ruleGroup, materials and draft_config matter here; the rest is
# accepted (its clients send it) and not used.
SUBMIT_FIELDS = {"ruleGroup", "materials", "draft_config", "testData", "segment_styles", "use_raw_segments",
                 "raw_segments", "raw_materials"}
MATERIAL_GROUPS = ("videos", "audios", "images")
URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _entries(materials):
    """(field path, entry) for every material: seed 001 sent {"videos": [...], "audios": [...]}
    and later a plain list; an entry is a URL or an object with `path` (or `url`) and `name`."""
    if isinstance(materials, dict):
        unknown = sorted(set(materials) - set(MATERIAL_GROUPS))
        if unknown:
            raise InvalidParams(_("materials has an unknown group %(name)s; use videos, audios or images.")
                                % {"name": str(unknown[0])[:60]}, "materials")
        for group in MATERIAL_GROUPS:
            items = materials.get(group, [])
            if not isinstance(items, list):
                raise InvalidParams(_("materials.%(group)s must be a list.") % {"group": group}, f"materials.{group}")
            for i, entry in enumerate(items):
                yield f"materials.{group}.{i}", entry
    elif isinstance(materials, list):
        for i, entry in enumerate(materials):
            yield f"materials.{i}", entry
    else:
        raise InvalidParams(_("materials must be an object with videos and audios lists, or a list."), "materials")


def material_downloads(materials):
    """[(url, name or None)] of every material given by URL, in order, each URL once. Entries
    without a URL scheme are local paths the seed's clients refer to: nothing to download."""
    found, seen = [], set()
    for field, entry in _entries(materials):
        if isinstance(entry, str):
            location, name = entry, None
        elif isinstance(entry, dict):
            location, name = entry.get("path") or entry.get("url"), entry.get("name")
        else:
            raise InvalidParams(_("Each material must be a URL or an object with a path."), field)
        if not isinstance(location, str) or not URL_RE.match(location.strip()):
            continue
        location = location.strip()
        if location in seen:
            continue
        seen.add(location)
        found.append((location, name if isinstance(name, str) and name.strip() else None))
    return found


def seed_submit(*, owner, owner_factory, body):
    """Validate seed 001's submit body and create the download task of its materials' URLs,
    keeping ruleGroup and draft_config in the params."""
    if not isinstance(body, dict):
        raise ApiError("bad_json", _("The request body must be a JSON object."))
    unknown = sorted(set(body) - SUBMIT_FIELDS)
    if unknown:
        raise ApiError("unknown_field", _("Unknown field: %(name)s.") % {"name": str(unknown[0])[:60]},
                       field=str(unknown[0])[:60])
    if not isinstance(body.get("ruleGroup"), dict):
        raise InvalidParams(_("ruleGroup is required and must be a JSON object."), "ruleGroup")
    if "materials" not in body:
        raise InvalidParams(_("materials is required."), "materials")
    draft_config = body.get("draft_config")
    if draft_config is None:
        draft_config = {}
    # No URL at all (seed 001's own smoke test, or only the client's local files): a task that
    # completes at once with nothing downloaded, as the seed's system answered.
    downloads = material_downloads(body["materials"])
    params = {"urls": [url for url, _name in downloads], "names": [name for _url, name in downloads],
              "ruleGroup": body["ruleGroup"], "draft_config": draft_config}
    try:
        return task_services.task_submit(owner=owner, owner_factory=owner_factory, kind=TaskKind.DOWNLOAD,
                                         params=params)
    except InvalidParams as exc:
        if (exc.field or "").split(".")[0] in ("urls", "names"):
            # The message names the URL or the name; seed clients sent them as materials.
            raise InvalidParams(exc.message, "materials", code=exc.code) from None
        raise
