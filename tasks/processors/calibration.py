"""`calibration`: resolve torrents' real names and files from their info hashes or magnet links
through an admin-defined qBittorrent connection (see torrents/calibrate.py). Operators only.

Params: {"hashes": [info hash or magnet link, ...] or text with one per line,
         "connection": name or id (optional when exactly one connection is enabled)}.

The task's timeout is the whole budget: metadata is awaited until a few seconds before it, all
probes at once. One entry: found → completed; timed out → status `timeout`; unknown, stopped
without metadata or refused → failed. Several entries: completed, each with its own status
(found, unknown, timeout, no_metadata, refused). Unreachable qBittorrent, refused logins and
unexpected answers are retryable failures."""

import logging
import time

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from tasks.errors import InvalidParams, TaskError
from tasks.models import TaskKind
from tasks.processors import Processor

log = logging.getLogger(__name__)

PARAM_NAMES = {"hashes", "connection"}
PROBE_LOG = "calibration-probes.json"
SHOWN_FILES = 200  # per torrent on its task's page; the result keeps them all


def wait_budget(timeout):
    """Seconds to wait for metadata within a task timeout, keeping a reserve to clean up and report."""
    return max(0.5, timeout - min(5.0, 0.2 * timeout))


class CalibrationProcessor(Processor):
    kind = TaskKind.CALIBRATION
    spawns_tools = False
    operator_only = True

    def validate(self, *, params, files, user):
        from torrents import selectors
        from torrents.refs import clean_refs

        if files:
            raise InvalidParams(_("Calibration tasks take no files."), "files")
        unknown = sorted(set(params) - PARAM_NAMES)
        if unknown:
            name = str(unknown[0])[:60]
            raise InvalidParams(_("Unknown parameter: %(name)s.") % {"name": name}, name)
        if "hashes" not in params:
            raise InvalidParams(_("Give at least one info hash or magnet link."), "hashes")
        hashes = clean_refs(params["hashes"])
        connection = selectors.connection_resolve(params.get("connection"))
        return {"connection": connection.pk, "connection_name": connection.name, "hashes": hashes}

    def make_title(self, params):
        from torrents.refs import parse_ref

        first = parse_ref(params["hashes"][0])
        label = first.display_name or first.info_hash
        return label if len(params["hashes"]) == 1 else f"{label} +{len(params['hashes']) - 1}"

    def shown_params(self, params):
        """The connection once, by its name (the id is only for the run)."""
        shown = {k: v for k, v in params.items() if k != "connection_name"}
        shown["connection"] = params.get("connection_name", params.get("connection"))
        return shown

    def default_timeout_for(self, params):
        return settings.MEDIACRAFT_CALIBRATION_TIMEOUT

    def run(self, ctx):
        from torrents import selectors, services
        from torrents.calibrate import CalibrationRun, ProbeLog, remove_logged_probes
        from torrents.models import EntryStatus, PasswordUnreadable
        from torrents.qbittorrent import QbtClient, QbtError, QbtLoginFailed
        from torrents.refs import parse_ref

        started = time.monotonic()
        name = ctx.params.get("connection_name", ctx.params["connection"])
        connection = selectors.connection_for_run(ctx.params["connection"])
        if connection is None:
            raise TaskError("qbt_connection_missing", {"name": name})
        refs = [parse_ref(text) for text in ctx.params["hashes"]]
        if connection.username and connection.login_blocked:
            raise TaskError("qbt_login_failed", {"name": connection.name}, retryable=True, detail=(
                f"not tried again: qBittorrent refused these credentials at {connection.login_failed_at}; "
                "change them, or test the connection, in the admin"))
        try:
            password = connection.get_password()
        except PasswordUnreadable:
            raise TaskError("qbt_password_unreadable", {"name": connection.name}) from None
        ctx.progress(0, stage="qbt_connecting", code="qbt_connecting", params={"name": connection.name})
        fingerprint = connection.credentials_fingerprint()
        try:
            with QbtClient(connection.url, connection.username, password, verify=connection.verify_tls) as client:
                try:
                    client.login()
                except QbtLoginFailed:
                    if connection.username:
                        services.connection_mark_login_failed(connection_id=connection.pk, fingerprint=fingerprint)
                    raise
                services.connection_clear_login_failure(connection_id=connection.pk)
                probe_log = ProbeLog(str(ctx.work_dir / PROBE_LOG))
                # An earlier attempt's probes first.
                remove_logged_probes(connection=connection, probe_log=probe_log, run_id=ctx.task_id, client=client)
                results = CalibrationRun(
                    client=client, connection=connection, refs=refs, progress=ctx.progress,
                    deadline=started + wait_budget(ctx.timeout), probe_log=probe_log, run_id=ctx.task_id,
                ).run()
        except QbtError as exc:
            params = {"name": connection.name, "reason": exc.reason, "status": exc.status or "",
                      "request": exc.request}
            raise TaskError(exc.code, params, detail=exc.detail, retryable=True) from None

        counts = {status: sum(1 for r in results if r["status"] == status) for status in EntryStatus.values}
        if len(results) == 1:
            self._settle_single(results[0])
        ctx.progress(100, stage="done", code="done", stats={"total": len(results), **counts})
        return {"connection": connection.name, "items": results, "counts": counts}

    def result_table(self, result):
        """One row per entry: its torrent's name, what was found out, its files (the first ones
        folded under the name)."""
        from django.template.defaultfilters import filesizeformat

        from torrents.models import EntryStatus

        items = result.get("items") if isinstance(result, dict) else None
        if not isinstance(items, list):
            return None
        labels = dict(EntryStatus.choices)
        rows = []
        for item in (i for i in items if isinstance(i, dict)):
            files = [f for f in item.get("files") or [] if isinstance(f, dict)]
            size = sum(f.get("size") or 0 for f in files if isinstance(f.get("size"), int))
            rows.append({
                "title": item.get("name") or item.get("magnet_name") or item.get("input") or "",
                "note": item.get("info_hash") or "", "status": str(item.get("status") or ""),
                "cells": [str(labels.get(item.get("status"), item.get("status") or "")),
                          str(len(files)) if files else "—", filesizeformat(size) if files else "—"],
                "details": [(str(f.get("path", "")), filesizeformat(f.get("size") or 0)) for f in files[:SHOWN_FILES]],
                "more": max(0, len(files) - SHOWN_FILES),
            })
        return {"columns": [_("Torrent"), _("Result"), _("Files"), pgettext("bytes", "Size")], "rows": rows}

    def _settle_single(self, item):
        """One entry: anything but found ends the task as seed 004's clients expect. A timeout is
        the task's own timeout (status `timeout`): the wait for metadata used all of it."""
        from rq.timeouts import JobTimeoutException

        from torrents.models import EntryStatus

        status = item["status"]
        if status == EntryStatus.TIMEOUT:
            raise JobTimeoutException(f"no metadata for {item['info_hash']} before the timeout")
        if status == EntryStatus.UNKNOWN:
            raise TaskError("calibration_unknown", {"hash": item["info_hash"]})
        if status == EntryStatus.NO_METADATA:
            raise TaskError("calibration_no_metadata", {"hash": item["info_hash"]}, detail=item.get("state", ""))
        if status == EntryStatus.REFUSED:
            raise TaskError("calibration_refused", {"hash": item["info_hash"]})

    def cleanup(self, ctx):
        """Remove what a killed run left: its probes in qBittorrent (never anything else)."""
        from torrents import selectors
        from torrents.calibrate import ProbeLog, remove_logged_probes

        super().cleanup(ctx)
        probe_log = ProbeLog(str(ctx.work_dir / PROBE_LOG))
        if not probe_log.read():
            return
        connection = selectors.connection_get(ctx.params.get("connection"))
        try:
            remove_logged_probes(connection=connection, probe_log=probe_log, run_id=ctx.task_id)
        except Exception:
            log.warning("task %s: could not remove its qBittorrent probes", ctx.task_id, exc_info=True)

    def form_class(self, user):
        if not Processor.user_may_run(self, user):
            return None
        from torrents.forms import calibration_form

        return calibration_form()


PROCESSOR = CalibrationProcessor()
