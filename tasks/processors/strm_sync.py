"""`strm_sync`: build a media-server library of .strm files and sidecars from an admin-defined
profile's WebDAV or local source, full or incremental (see strm/sync.py).

Params: {"profile": id or name, "sync_type": "full" | "incremental"}. Operators only."""

import os

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from tasks.errors import InvalidParams, TaskError
from tasks.models import TaskKind
from tasks.processors import Processor

PARAM_NAMES = {"profile", "sync_type", "trigger"}


class StrmSyncProcessor(Processor):
    kind = TaskKind.STRM_SYNC
    spawns_tools = False
    operator_only = True
    default_timeout = 6 * 3600
    max_attempts = 2  # a lost worker or an unreachable source is tried once more; a sync is idempotent

    def validate(self, *, params, files, user):
        from strm import selectors
        from strm.models import SyncTrigger
        from strm.services import SyncRunning, clean_sync_type

        if files:
            raise InvalidParams(_("STRM syncs take no files."), "files")
        unknown = sorted(set(params) - PARAM_NAMES)
        if unknown:
            raise InvalidParams(_("Unknown parameter: %(name)s.") % {"name": str(unknown[0])[:60]}, str(unknown[0])[:60])
        profile = selectors.profile_resolve(params.get("profile"))
        sync_type = clean_sync_type(params.get("sync_type", "incremental"))
        trigger = params.get("trigger", SyncTrigger.API)
        if trigger not in SyncTrigger.values:
            raise InvalidParams(_("trigger must be one of: %(choices)s.") % {"choices": ", ".join(SyncTrigger.values)},
                                "trigger")
        running = selectors.strm_active_task(profile_id=profile.pk)
        if running is not None:
            raise SyncRunning(running)
        return {"profile": profile.pk, "profile_name": profile.name, "sync_type": sync_type, "trigger": trigger}

    def make_title(self, params):
        return f"{params.get('profile_name', params['profile'])} · {params['sync_type']}"

    def result_table(self, result):
        """One row per outcome (generated, skipped, failed, deleted) with its count; the files folded
        under it, a failure with its reason (the lists are capped by the sync; totals are not)."""
        if not isinstance(result, dict) or not isinstance(result.get("totals"), dict):
            return None
        reasons = {e.get("path"): e.get("reason") for e in result.get("errors") or [] if isinstance(e, dict)}
        labels = {"generated": _("Generated"), "skipped": _("Skipped"), "failed": _("Failed"), "deleted": _("Deleted")}
        rows = []
        for outcome, label in labels.items():
            paths = [str(p) for p in result.get(outcome) or [] if isinstance(p, str)]
            total = result["totals"].get(outcome)
            total = total if isinstance(total, int) else len(paths)
            rows.append({
                "title": str(label), "note": "", "status": outcome, "cells": [str(total)],
                "details": [(path, str(reasons.get(path) or "")) for path in paths],
                "more": max(0, total - len(paths)),
            })
        return {"columns": [_("Outcome"), _("Files")], "rows": rows}

    def default_timeout_for(self, params):
        from strm.models import StrmProfile

        timeout = StrmProfile.objects.filter(pk=params["profile"]).values_list("timeout", flat=True).first()
        return timeout or self.default_timeout

    def run(self, ctx):
        from strm import selectors, services
        from strm.sync import SyncRun

        profile_id = ctx.params["profile"]
        profile = selectors.profile_for_run(profile_id)
        if profile is None:
            raise TaskError("strm_profile_missing", {"profile": ctx.params.get("profile_name", profile_id)})
        holder = services.strm_profile_claim(profile_id=profile_id, task_id=ctx.task_id)
        if holder is not None:
            raise TaskError("strm_already_running", {"task_id": str(holder)})
        try:
            return SyncRun(profile=profile, sync_type=ctx.params["sync_type"], progress=ctx.progress).run()
        finally:
            services.strm_profile_release(profile_id=profile_id, task_id=ctx.task_id)

    def cleanup(self, ctx):
        """A stopped, failed or timed-out sync keeps what it wrote (every file is complete:
        writes are atomic); only temporary files of a killed write are removed."""
        from strm import paths, services
        from strm.models import StrmProfile
        from strm.writer import LibraryWriter

        super().cleanup(ctx)
        profile_id = ctx.params.get("profile")
        services.strm_profile_release(profile_id=profile_id, task_id=ctx.task_id)
        target = StrmProfile.objects.filter(pk=profile_id).values_list("target_path", flat=True).first()
        if not target:
            return
        try:
            paths.confine(target)
        except ValidationError:
            return
        if os.path.isdir(target):
            LibraryWriter(target).scan()  # removes leftover temporary files on the way


PROCESSOR = StrmSyncProcessor()
