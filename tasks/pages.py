"""Server-rendered pages: new task, my tasks, task detail. Thin views over services and
selectors; the templates render the same task JSON the API and the WebSocket send, so the page's
JavaScript updates what the server drew with exactly the shape it receives."""

import functools
import json
import math
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import connections
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_POST

from mediacraft.api import unreadable_body
from mediacraft.numbers import parse_digits
from storage.selectors import files_of_user
from tasks import selectors, services
from tasks.errors import ApiError, InvalidParams, NotFound
from tasks.events import public_task, task_snapshot
from tasks.models import Task, TaskKind
from tasks.processors import Processor, registry
from users.services import visitor_ensure

PAGE_SIZE = 20
RECENT_ON_HOME = 5
VIDEO_SUFFIXES = (".mp4", ".m4v", ".webm", ".mov", ".mkv", ".ogv")

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

# Labels of the statistics kinds report (ctx.progress(stats=...)); unknown keys show as they are.
STAT_LABELS = {
    # ffmpeg (watermark, merge)
    "fps": gettext_lazy("Frames per second"),
    "speed": gettext_lazy("Encoding speed"),
    "out_seconds": gettext_lazy("Encoded"),
    "total_seconds": gettext_lazy("Duration"),
    # downloads
    "download_speed": gettext_lazy("Download speed"),
    "downloaded_size": gettext_lazy("Downloaded"),
    "total_size": gettext_lazy("Total size"),
    "total_files": gettext_lazy("Files"),
    "completed_files": gettext_lazy("Files done"),
    "failed_files": gettext_lazy("Files failed"),
    "active_files": gettext_lazy("Downloading now"),
    # STRM sync
    "sync_type": gettext_lazy("Sync type"),
    "profile": gettext_lazy("Profile"),
    "listed": gettext_lazy("Listed"),
    "processed": gettext_lazy("Processed"),
    "generated": gettext_lazy("Generated"),
    "skipped": gettext_lazy("Skipped"),
    "failed": gettext_lazy("Failed"),
    "deleted": gettext_lazy("Deleted"),
    "folders": gettext_lazy("Folders"),
    "files_per_second": gettext_lazy("Files per second"),
    # calibration (counts of entries by what was found out)
    "total": gettext_lazy("Total"),
    "found": gettext_lazy("Found"),
    "unknown": gettext_lazy("Unknown to qBittorrent"),
    "timeout": gettext_lazy("Timed out"),
    "no_metadata": gettext_lazy("Stopped without metadata"),
    "refused": gettext_lazy("Refused"),
    "waiting": gettext_lazy("Waiting for metadata"),
    # any kind
    "eta_seconds": gettext_lazy("Time left"),
    "eta": gettext_lazy("Time left"),
}
# Top-level parameters of kinds without a page form to name them (STRM sync).
PARAM_LABELS = {
    "profile": gettext_lazy("Profile"),
    "profile_name": gettext_lazy("Profile name"),
    "connection": gettext_lazy("qBittorrent connection"),
    "sync_type": gettext_lazy("Sync type"),
    "trigger": gettext_lazy("Started by"),
    "notes": gettext_lazy("Notes"),
}
HIDDEN_STATS = ("eta_source", "progress_percent")
SPEED_STATS = ("download_speed", "speed", "files_per_second")  # the first present is the row's "speed"
ETA_STATS = ("eta_seconds", "eta")


def csp(view):
    """Send a strict Content-Security-Policy: no inline script, style or event handlers."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.setdefault("Content-Security-Policy", CSP)
        return response

    return wrapper


def viewer(request):
    return request.user if request.user.is_authenticated else None


def client_strings():
    """Every text the pages' JavaScript shows, in the active language (no JS catalogue)."""
    return {
        "live": _("Live"),
        "connecting": _("Connecting…"),
        "reconnecting": _("Reconnecting…"),
        "live_title": _("Updates arrive as they happen."),
        "reconnecting_title": _("The live connection dropped; checking for updates every few seconds meanwhile."),
        "uploading": _("Uploading %(done)s of %(total)s (%(percent)s%%)"),
        "upload_processing": _("Upload complete; checking the files…"),
        "upload_cancelled": _("Upload cancelled. Nothing was submitted."),
        "upload_failed": _("The upload failed: the connection was lost. Try again."),
        "checking_form": _("Checking…"),
        "upload_progress": _("Upload progress"),
        "cancel_upload": _("Cancel upload"),
        "staging": _("Uploading %(name)s to show a frame of it…"),
        "video_info": _("%(width)s×%(height)s pixels · %(duration)s · %(size)s"),
        "reusing": _("The copied task's video, %(name)s, is used again; choose a file to use another."),
        "frame_alt": _("A frame of the video: drag on it to draw a box around each logo"),
        "preview_failed": _("No frame of this video could be shown; enter the boxes as numbers."),
        "frame_at": _("Frame at"),
        "frame_waiting": _("The server is busy making other previews; asking again in %(seconds)s s…"),
        "frame_no_connection": _("The frame could not be fetched: the connection was lost."),
        "boxes_by_number": _("You can still enter the boxes as numbers."),
        "compare_before": _("Original"),
        "compare_after": _("Result"),
        "compare_before_alt": _("A frame of the original video"),
        "compare_after_alt": _("The same frame of the result"),
        "compare_divider": _("Divider"),
        "compare_failed": _("A frame could not be shown."),
        "use_as_start": _("Use as start"),
        "use_as_end": _("Use as end"),
        "clear_boxes": _("Clear the boxes"),
        "remove_box": _("Remove box %(n)s"),
        "boxes_help": _("Drag on the picture to draw a box around each logo; drag a box to move it and its corner "
                        "to resize it. Move the slider to find a frame where the logo shows."),
        "order_label": _("Order in which the videos are joined"),
        "move_up": _("Move %(name)s up"),
        "move_down": _("Move %(name)s down"),
        "server_error": _("The server could not handle the request (HTTP %(status)s). Try again in a moment."),
        "network_error": _("Could not reach the server. Check your connection and try again."),
        "cancelling": _("Cancelling…"),
        "cancel": _("Cancel"),
        "download": _("Download"),
        "deleted_here": _("This task has been deleted."),
        "notify_on": _("Notifications on"),
        "notify_off": _("Notify me"),
        "notify_blocked": _("Notifications are blocked in this browser's site settings."),
        "notify_unsupported": _("This browser cannot show notifications."),
        "notify_enabled": _("You will be notified when a task finishes or fails."),
        "notify_disabled": _("Notifications turned off."),
        "notify_completed": _("Task completed"),
        "notify_failed": _("Task failed"),
        "notify_timeout": _("Task timed out"),
        "confirm_delete": _("Delete this task and its result files? This cannot be undone."),
        "confirm_cancel": _("Cancel this task? A running tool is stopped and its partial output removed."),
        "confirm_revoke": _("Revoke this token? Scripts using it stop working at once."),
        "confirm_cancel_all": _("Cancel every unfinished task in this list, on all its pages? Running tools are "
                                "stopped and their partial output removed."),
        "confirm_delete_finished": _("Delete every finished task in this list, on all its pages, with its result "
                                     "files? This cannot be undone."),
        "copied": _("Copied to the clipboard."),
        "copy_failed": _("Could not copy; select the text and copy it yourself."),
        "stats": {key: str(label) for key, label in STAT_LABELS.items()},
        "stat_values": {key: {code: str(label) for code, label in codes.items()} for key, codes in value_labels().items()},
        "stats_hidden": list(HIDDEN_STATS),
        "stats_speed": list(SPEED_STATS),
        "stats_eta": list(ETA_STATS),
    }


def status_rules():
    """Which actions each status allows: the page's JavaScript reads this, never hard-codes statuses.
    Retry is the task JSON's own "retryable": a kind may allow it from more statuses."""
    return {
        "cancellable": [s for s in Task.Status.values if s not in Task.TERMINAL],
        "deletable": list(Task.TERMINAL),
        "terminal": list(Task.TERMINAL),
        "finished_ok": [Task.Status.COMPLETED],
        "finished_bad": [Task.Status.FAILED, Task.Status.TIMEOUT],
    }


def client_labels():
    from tasks import messages as codes

    return {
        "statuses": {value: str(label) for value, label in Task.Status.choices},
        "stages": {code: str(label) for code, label in codes.STAGES.items() if code},
    }


def page_context(request, **context):
    from django.templatetags.static import static

    context.setdefault("client", {"strings": client_strings(), "rules": status_rules(), "labels": client_labels(),
                                  "icons": static("mediacraft/icons.svg")})
    return context


def _parse_time(value):
    return datetime.fromisoformat(value) if value else None


SIZE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def format_bytes(value):
    """1024-based, one decimal (as format.js formatBytes, so live updates do not change the look)."""
    number, unit = float(value or 0), 0
    while abs(number) >= 1024 and unit < len(SIZE_UNITS) - 1:
        number, unit = number / 1024, unit + 1
    return f"{round(number)}\xa0B" if unit == 0 else f"{number:.1f}\xa0{SIZE_UNITS[unit]}"


def format_duration(seconds, always_hours=False):
    """H:MM:SS, or M:SS under an hour (as format.js formatDuration)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours or always_hours else f"{minutes}:{secs:02d}"


def value_labels():
    """{key: {code: label}} of stats and params whose values are codes, so they show translated."""
    from strm.models import SyncTrigger, SyncType

    return {"sync_type": dict(SyncType.choices), "trigger": dict(SyncTrigger.choices)}


def value_label(key, value):
    """The label of a coded value (as static/mediacraft/js/format.js statRows), else None."""
    label = value_labels().get(key, {}).get(value) if isinstance(value, str) else None
    return str(label) if label is not None else None


def format_stat(key, value):
    """The same formatting as static/mediacraft/js/format.js formatStat()."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        if key == "eta" or key.startswith("eta_") or key.endswith("_seconds"):
            return format_duration(value)
        if key == "speed":  # ffmpeg: a multiple of real time
            return f"{value:.1f}×"
        if key.endswith("_speed") or key.endswith("bytes_per_second"):
            return f"{format_bytes(value)}/s"
        if key.endswith("_per_second"):
            return f"{value:.1f}/s"
        if key.endswith("_size") or "bytes" in key:
            return format_bytes(value)
        if isinstance(value, float) and not value.is_integer():
            return f"{value:.1f}"
        return f"{int(value)}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def stats_rows(stats):
    """[{key, label, value}] of the stats worth showing (an unknown value, None, is left out)."""
    rows = []
    for key, value in (stats or {}).items():
        if key in HIDDEN_STATS or key.startswith("_") or value is None or value == "":
            continue
        rows.append({"key": key, "label": str(STAT_LABELS.get(key, key.replace("_", " "))),
                     "value": value_label(key, value) or format_stat(key, value)})
    return rows


def file_view(item):
    """A file of the task JSON (inputs, outputs) for templates; static/mediacraft/js/tasks.js
    renderOutput() draws the same."""
    name, media = str(item.get("name", "")), item.get("media") or {}
    url = str(item.get("url", ""))
    is_video = name.lower().endswith(VIDEO_SUFFIXES) or bool(media.get("width") and media.get("duration"))
    return dict(item, is_video=is_video, size_text=format_bytes(item.get("size") or 0),
                play_url=f"{url}{'&' if '?' in url else '?'}inline=1")


def summary(data):
    """(stage, message, stats rows) worth showing for a task JSON; static/mediacraft/js/tasks.js
    summary() is the same. A finished task shows its error (or nothing), never a stale stage,
    speed or time left; a message that only repeats the stage is left out."""
    terminal = data["status"] in Task.TERMINAL
    stage = "" if terminal else data["stage_label"]
    if terminal:
        message = data["error"]["message"] if data["error"] else ""
    else:
        message = "" if data["message"] == stage else data["message"]
    rows = [r for r in stats_rows(data["stats"]) if not (terminal and r["key"] in SPEED_STATS + ETA_STATS)]
    return stage, message, rows


def param_labels(task, user):
    """{param path: (label, {value: its label})} from the kind's page form, so the detail page says
    "Seconds", not "args.seconds", and a choice by its label. Empty when the kind has no form for
    this user (any more)."""
    processor = registry().get(task.kind)
    form_class = processor.form_class(user) if processor is not None else None
    if form_class is None:
        return {}
    initial = {k: v for k, v in task.params.items() if isinstance(v, (str, int, float))} if isinstance(task.params, dict) else {}
    form = form_class(prefix=task.kind, initial=initial)
    labels = {}
    for path, name in form.param_fields().items():
        field = form.fields.get(name)
        if field is not None and path not in form.COMMON_FIELDS and field.label:
            choices = {str(value): str(label) for value, label in getattr(field, "choices", ()) if value != ""}
            labels[path] = (str(field.label), choices)
    return labels


def param_rows(params, labels=None, prefix=""):
    """Nested params flattened into (name, value) rows for the detail page; an unset one (None, a
    list of nothing but None) is left out. labels: param_labels()."""
    rows = []
    for key, value in (params or {}).items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(param_rows(value, labels, f"{path}."))
        elif value is not None and not (isinstance(value, list) and all(item is None for item in value)):
            label, choices = (labels or {}).get(path, ("", {}))
            name = label or PARAM_LABELS.get(path) or path.replace(".", " › ")
            shown = choices.get(str(value)) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
            rows.append({"path": path, "name": str(name), "value": shown or param_value(key, value)})
    return rows


def param_value(key, value):
    """A param as people read it: a code by its label, a list one item per line, a box as its
    numbers (as the form takes them), a flat object as its pairs; anything else as JSON."""
    label = value_label(key, value)
    if label is not None:
        return label
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, (str, int, float)):
        return str(value)
    if value is None:  # an unset item of a list, e.g. a download's empty line of names
        return "—"
    if isinstance(value, list):
        return "\n".join(json.dumps(item, ensure_ascii=False) if isinstance(item, list) else param_value(key, item)
                         for item in value)
    if isinstance(value, dict) and set(value) == {"x", "y", "w", "h"}:  # a box, as the watermark form takes it
        return ", ".join(param_value(key, value[k]) for k in "xywh")
    if isinstance(value, dict) and value and all(isinstance(v, (str, int, float)) for v in value.values()):
        # In key order: PostgreSQL's jsonb does not keep an object's own order.
        return ", ".join(f"{k}: {param_value(k, v)}" for k, v in sorted(value.items()))
    return json.dumps(value, ensure_ascii=False)


def timeline_rows(timeline):
    """Status changes and stage changes, each with its label, in order."""
    from tasks import messages as codes

    rows = []
    for entry in timeline or []:
        if not isinstance(entry, dict):
            continue
        if entry.get("status") in Task.Status.values:
            rows.append({"kind": "status", "value": entry["status"], "label": str(Task.Status(entry["status"]).label),
                         "at": _parse_time(entry.get("at")), "at_iso": entry.get("at")})
        elif "stage" in entry:
            label = codes.render(codes.STAGES, entry["stage"]) if entry["stage"] in codes.STAGES else entry["stage"]
            if not label or (rows and rows[-1]["label"] == label):
                continue  # e.g. the stage "running" right after the status "running"
            rows.append({"kind": "stage", "value": entry["stage"], "label": label,
                         "at": _parse_time(entry.get("at")), "at_iso": entry.get("at")})
    return rows


def task_view(task, labels=None):
    """The task JSON plus what templates need to draw it (parsed times, formatted stats)."""
    data = public_task(task_snapshot(task))
    view = dict(data)
    view["json"] = data
    for name in ("created_at", "queued_at", "started_at", "finished_at", "expires_at", "retry_at"):
        view[name] = _parse_time(data[name])
    view["display_title"] = data["title"] or data["kind_label"]
    view["stage_text"], view["message_text"], view["stats_rows"] = summary(data)
    by_key = {r["key"]: r["value"] for r in view["stats_rows"]}
    view["speed"] = next((by_key[k] for k in SPEED_STATS if k in by_key), "")
    view["eta"] = next((by_key[k] for k in ETA_STATS if k in by_key), "")
    processor = registry().get(task.kind)
    shown = processor.shown_params(data["params"]) if processor is not None else data["params"]
    view["param_rows"] = param_rows(shown, labels)
    view["timeline_rows"] = timeline_rows(data["timeline"])
    view["result_text"] = json.dumps(data["result"], ensure_ascii=False, indent=2) if data["result"] is not None else ""
    view["outputs"] = [file_view(o) for o in data["outputs"]]
    view["inputs"] = [file_view(f) for f in data.get("inputs", [])]
    if view["inputs"]:  # named files instead of the ids in params["files"]
        view["param_rows"] = [r for r in view["param_rows"] if not r["path"].startswith("files")]
    view["percent"] = int(math.floor(data["progress"]))
    view["timeout_text"] = format_duration(data["timeout"], always_hours=True)
    view["cancellable"] = data["status"] not in Task.TERMINAL
    view["deletable"] = data["status"] in Task.TERMINAL
    view["cancel_requested"] = bool(task.cancel_requested_at)
    return view


def blank_task_view():
    """An empty row for the <template> the page clones when a new task arrives live."""
    task = Task(id="00000000-0000-0000-0000-000000000000", kind=TaskKind.COMMAND, status=Task.Status.PENDING,
                timeout=0, timeline=[])
    task.created_at = None
    return task_view(task)


def kinds_for(user):
    """[(kind, label, form class)] of the kinds the viewer may run from the pages, in TaskKind order."""
    order = {value: i for i, value in enumerate(TaskKind.values)}
    found = []
    for kind, processor in sorted(registry().items(), key=lambda item: (order.get(item[0], 99), item[0])):
        if not processor.user_may_run(user):
            continue
        form_class = processor.form_class(user)
        if form_class is None:
            continue
        label = TaskKind(kind).label if kind in TaskKind.values else kind
        found.append((kind, str(label), form_class, processor))
    return found


def _new_task_context(request, kinds, kind, form):
    user = viewer(request)
    recent = [task_view(t) for t in selectors.task_list(user=user)[:RECENT_ON_HOME]] if user else []
    return page_context(
        request, kinds=[(k, label) for k, label, _c, _p in kinds], kind=kind, form=form,
        processor=next((p for k, _l, _c, p in kinds if k == kind), None),
        recent=recent, row_template=blank_task_view(), live=True, nav="new",
    )


@csp
def home(request):
    return task_new(request, kind=None)


@csp
def task_new(request, kind=None):
    user = viewer(request)
    kinds = kinds_for(user)
    if not kinds:
        return render(request, "tasks/new.html", _new_task_context(request, kinds, None, None))
    if kind is None:
        kind = kinds[0][0]
    form_class = next((c for k, _l, c, _p in kinds if k == kind), None)
    if form_class is None:
        raise Http404()
    if request.method != "POST":
        initial = {"template": request.GET["template"]} if request.GET.get("template") else {}
        if request.GET.get("from"):
            initial = copied_task(user, form_class, kind, request.GET["from"]) or initial
        form = form_class(prefix=kind, initial=initial)
        reused = form.reused_ids()
        if reused:
            files = files_of_user(user=user, ids=reused)
            if len(files) == len(reused):
                form.offer_reuse(files)
            else:  # the copied task's inputs are gone: a blank form, not one naming files that are not there
                form = form_class(prefix=kind)
        return render(request, "tasks/new.html", _new_task_context(request, kinds, kind, form))

    prepare = request.headers.get("X-MediaCraft-Prepare") == "1"
    form = form_class(request.POST, request.FILES, prefix=kind)
    if prepare:
        form.for_prepare()
    too_large = request.META.get("mediacraft.too_large")
    if too_large:  # the upload handler dropped the file: say why instead of "this field is required"
        field = form.field_for("files")
        form.errors[field] = form.error_class([_("%(name)s is larger than the %(limit)s MB upload limit.") % {
            "name": too_large[0], "limit": settings.MEDIACRAFT_MAX_UPLOAD_MB}])
    try:
        if not too_large and form.is_valid():
            if prepare:
                return JsonResponse({"submission": form.submission(), "field_map": form.field_map()})
            try:
                task = _submit(request, user, kind, form)
            except InvalidParams as exc:
                form.add_invalid_params(exc)
            except ApiError as exc:
                form.add_error(form.field_for(exc.extra.get("field")), str(exc.message))
            else:
                return redirect(f"{reverse('task_detail', args=[task.pk])}?created=1")
    finally:
        for upload in (f for files in request.FILES.lists() for f in files[1]):
            getattr(upload, "discard", upload.close)()
    if prepare:
        errors = {form[name].auto_id if name in form.fields else "": [str(e) for e in errs]
                  for name, errs in form.errors.items()}
        return JsonResponse({"errors": errors}, status=400)
    return render(request, "tasks/new.html", _new_task_context(request, kinds, kind, form), status=400)


def copied_task(user, form_class, kind, task_id):
    """The new-task form's initial values for a copy of the viewer's task of this kind, or None
    (not theirs, another kind, or settings this form cannot carry)."""
    try:
        task = selectors.task_get_for_user(user=user, task_id=task_id)
    except NotFound:
        return None
    initial = copy_initial(form_class, task) if task.kind == kind else None
    return None if initial is None else {**initial, "title": typed_title(task)}


def copy_initial(form_class, task):
    """The form's initial values for a copy of the task (its title aside), or None when it cannot
    carry its settings."""
    initial = form_class(prefix=task.kind).initial_for(task.params)
    return None if initial is None else {**initial, "priority": task.priority}


def typed_title(task):
    """The task's title if its owner typed one, else "": a default title names the old params,
    and a copy submitted with other ones gets its own default."""
    processor = registry().get(task.kind)
    try:
        default = processor.make_title(task.params)[:200] if processor is not None else None
    except (LookupError, TypeError, ValueError, ValidationError):  # params an older version stored
        default = None
    return "" if task.title == default else task.title


def copy_url(user, task):
    """The link that opens the new-task form filled in with the task's settings, or "" when the
    viewer's form for its kind cannot carry them (uploads, a tool closed since). Only the task's
    own kind is asked for its form."""
    processor = registry().get(task.kind)
    form_class = processor.form_class(user) if processor is not None and processor.user_may_run(user) else None
    if form_class is None or copy_initial(form_class, task) is None:
        return ""
    return f"{reverse('task_new', args=[task.kind])}?{urlencode({'from': task.pk})}"


def _submit(request, user, kind, form):
    """task_submit from a valid form. Uploads are stored first for kinds that keep files (as the
    API does), and removed again if the task is refused."""
    options = {"kind": kind, "params": form.to_params(), "priority": form.cleaned_data.get("priority") or 5,
               "title": form.cleaned_data.get("title") or ""}
    files = form.uploaded_files()
    processor = registry()[kind]
    if not (files and processor.accepts_files):
        return services.task_submit(owner=user, owner_factory=lambda: visitor_ensure(request), files=files, **options)
    from storage.api import store_uploads

    owner = user or visitor_ensure(request)
    stored = store_uploads(owner, files)
    try:
        return services.task_submit(owner=owner, files=stored, **options)
    except Exception:
        for stored_file in stored:
            stored_file.delete()
        raise


@csp
@require_GET
def task_list(request):
    user = viewer(request)
    filters = shown_filters(request.GET)
    status, kind, q = filters.values()
    qs = selectors.task_list(user=user, status=status or None, kind=kind or None, q=q or None)
    finished, unfinished = selectors.task_counts(tasks=qs)
    count = finished + unfinished
    pages = max(1, math.ceil(count / PAGE_SIZE))
    page = min(max(1, parse_digits(request.GET.get("page", "1")) or 1), pages)
    tasks = [task_view(t) for t in qs[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]]
    finished_here = sum(1 for t in tasks if t["status"] in Task.TERMINAL)
    has_any = count > 0 or (user is not None and selectors.task_list(user=user).exists())
    return render(request, "tasks/list.html", page_context(
        request, tasks=tasks, count=count, page=page, pages=pages, page_size=PAGE_SIZE,
        status=status, kind=kind, q=q, filter_query=urlencode({k: v for k, v in filters.items() if v}),
        max_search=selectors.MAX_SEARCH, has_any=has_any, filtered=bool(status or kind or q), finished=finished,
        unfinished=unfinished, finished_elsewhere=finished - finished_here,
        unfinished_elsewhere=unfinished - (len(tasks) - finished_here),
        statuses=Task.Status.choices, kind_choices=TaskKind.choices, row_template=blank_task_view(),
        live=True, nav="tasks",
    ))


def shown_filters(data):
    """{status, kind, q}: the list's filters as the list can use them; one that names nothing (or
    a search text no title can hold) is no filter."""
    status, kind = data.get("status", ""), data.get("kind", "")
    try:
        q = selectors.task_filters(q=data.get("q", ""))[2]
    except ApiError:
        q = ""
    return {"status": status if status in Task.Status.values else "", "kind": kind if kind in TaskKind.values else "",
            "q": q}


def _get_task(request, task_id):
    try:
        return selectors.task_get_for_user(user=viewer(request), task_id=task_id)
    except NotFound:
        raise Http404() from None


@csp
@require_GET
def task_detail(request, task_id):
    task = _get_task(request, task_id)
    processor = registry().get(task.kind)
    return render(request, "tasks/detail.html", page_context(
        request, task=task_view(task, param_labels(task, viewer(request))), created=request.GET.get("created") == "1",
        copy_url=copy_url(viewer(request), task), live=True, nav="tasks",
        result_table=processor.result_table(task.result) if processor is not None and task.result else None,
        # Only a kind that draws tables has its page fetched again when a task ends (tasks.js).
        table_kind=processor is not None and type(processor).result_table is not Processor.result_table,
    ))


ACTIONS = {
    "cancel": (services.task_cancel, gettext_lazy("Cancellation requested.")),
    "retry": (services.task_retry, gettext_lazy("The task will run again.")),
    "delete": (services.task_delete, gettext_lazy("Task deleted.")),
}


@require_POST
def task_action(request, task_id, action):
    """The no-JavaScript path of the action buttons (with JavaScript they call the API)."""
    if action not in ACTIONS:
        raise Http404()
    task = _get_task(request, task_id)
    service, done = ACTIONS[action]
    try:
        service(task=task)
        messages.success(request, str(done))
    except NotFound:
        raise Http404() from None  # deleted by another request meanwhile
    except ApiError as exc:
        messages.error(request, str(exc.message))
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        target = reverse("task_list") if action == "delete" else reverse("task_detail", args=[task_id])
    if action == "delete" and str(task_id) in target:
        target = reverse("task_list")
    return redirect(target)


BULK_ACTIONS = {"cancel-all": services.task_cancel_all, "delete-finished": services.task_delete_finished}


@require_POST
def task_bulk(request, action):
    """The task list's buttons for all unfinished or all finished tasks its filters show."""
    if action not in BULK_ACTIONS:
        raise Http404()
    status, kind, q = (request.POST.get(name, "") for name in ("status", "kind", "q"))
    try:
        n = BULK_ACTIONS[action](owner=viewer(request), kind=kind, status=status, q=q)
    except ApiError as exc:
        messages.error(request, str(exc.message))
    else:
        if action == "cancel-all":
            done = (ngettext("Cancellation requested for %(n)s task.", "Cancellation requested for %(n)s tasks.",
                             n) % {"n": n} if n else _("No unfinished tasks to cancel."))
        else:
            done = (ngettext("Deleted %(n)s finished task.", "Deleted %(n)s finished tasks.", n) % {"n": n}
                    if n else _("No finished tasks to delete."))
        (messages.success if n else messages.info)(request, done)
    query = urlencode({name: value for name, value in shown_filters(request.POST).items() if value})
    return redirect(reverse("task_list") + (f"?{query}" if query else ""))


def page_not_found(request, exception=None):
    return error_page(request, "404.html", 404)


def bad_request(request, exception=None):
    """Django refused the request before or in the view; most often its body (too many files or
    fields, too large, malformed), which the page names, with the way back to the form."""
    status, code, message = unreadable_body(exception) or (400, "bad_request", _("The request could not be read."))
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if request.headers.get("X-MediaCraft-Prepare") == "1":  # the form's script shows it as a form error
        return JsonResponse({"errors": {"": [message]}}, status=status)
    back = request.path if url_has_allowed_host_and_scheme(request.path, allowed_hosts=None) else reverse("home")
    return error_page(request, "400.html", status, message=message, back=back)


def error_page(request, template, status, **context):
    try:
        return csp(lambda r: render(r, template, page_context(r, nav="", status=status, **context), status=status))(
            request)
    finally:
        # Under ASGI, Django renders this page in a thread of a shared executor, not in the
        # request's: the request's end never closes what it opened there, and each such thread
        # kept a connection (from the pool, for good). Nothing later in the request needs it.
        for conn in connections.all(initialized_only=True):
            if not conn.in_atomic_block:
                conn.close()


def server_error(request):
    """No database, no context processors: a plain page that cannot fail in turn."""
    from django.http import HttpResponseServerError
    from django.template import loader

    return HttpResponseServerError(loader.get_template("500.html").render({}))
