"""Job kinds. Each module here defines PROCESSOR, an instance of a Processor subclass;
adding a kind means adding one module."""

import abc
import contextlib
import functools
import importlib
import pkgutil
import shutil

from django.conf import settings


class Processor(abc.ABC):
    kind = None  # a TaskKind value
    operator_only = False
    accepts_files = False
    default_timeout = 3600
    max_attempts = None  # None: MEDIACRAFT_MAX_ATTEMPTS
    # Whether runs start programs (ffmpeg, a tool): their work horse then gets the process group
    # guard up front. ctx.run starts it anyway, so a wrong False costs only the probe gap.
    spawns_tools = True

    @abc.abstractmethod
    def validate(self, *, params, files, user):
        """Return cleaned params or raise tasks.errors.InvalidParams."""

    def make_title(self, params):
        return ""

    def shown_params(self, params):
        """The params as the task's page lists them: a kind may leave out or merge what only it
        needs (ids, copies kept for its runs). Default: all of them."""
        return params

    def result_table(self, result):
        """The result as a table for the task's page, or None (the page shows its JSON):
        {"columns": [heading, ...], "rows": [{"title", "note", "status", "cells": [text, ...],
        "error"?, "details"?: [(text, text), ...], "more"?: n}]}; the first column is the title's."""
        return None

    def default_timeout_for(self, params):
        return self.default_timeout

    @abc.abstractmethod
    def run(self, ctx):
        """Do the work; report through ctx.progress; return the result dict."""

    def cleanup(self, ctx):
        """Remove what a cancelled, failed or timed-out run left behind."""
        from storage.services import files_delete_outputs

        files_delete_outputs(task_id=ctx.task_id)
        shutil.rmtree(ctx.output_dir, ignore_errors=True)

    def retry_statuses(self, task):
        """The statuses from which the owner may retry this task by hand (tasks.services.task_retry)."""
        from tasks.models import Task

        return Task.RETRYABLE_BY_USER

    def prepare_retry(self, task_id):
        """Called after a manual retry is committed, before the task runs again: remove what the
        new run must not find. Default: every output (the task starts over)."""
        from storage.services import files_delete_outputs
        from tasks.runtime import task_work_dir

        files_delete_outputs(task_id=task_id)
        shutil.rmtree(task_work_dir(task_id) / "output", ignore_errors=True)

    def reconcile(self):
        """Called by the scheduler's reconciler every round: repair what this kind's crashed or
        killed runs left outside the database (e.g. downloads still running in aria2)."""

    def max_attempts_for(self, params):
        return self.max_attempts or settings.MEDIACRAFT_MAX_ATTEMPTS

    def limits_for(self, params):
        """(default timeout, max attempts) of a task with these cleaned params; one call, so a
        kind can read both from one row."""
        return self.default_timeout_for(params), self.max_attempts_for(params)

    @contextlib.contextmanager
    def reading_once(self):
        """Around one submit's user_may_run, validate and limits_for: a kind whose three read
        the same row may read it once, for all three (tasks.services.task_submit)."""
        yield

    def user_may_run(self, user, params=None):
        """Whether the user may run this kind (with these params, when given)."""
        if not self.operator_only:
            return True
        return bool(user and user.is_authenticated and user.has_perm("tasks.run_operator_tasks"))

    def form_class(self, user):
        """The new-task page's form for this kind as `user` (None: an anonymous visitor) sees it:
        a subclass of tasks.forms.TaskForm with `kind` set, whose to_params() turns its cleaned
        data into this kind's params and whose file fields (sent in order as `files`) are the
        uploads when accepts_files. validate() stays the authority: its InvalidParams(message,
        field) lands on the form field that TaskForm.field_for(field) names. None: no page form
        (the kind is API-only for this user)."""
        return None


@functools.cache
def registry():
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        processor = getattr(module, "PROCESSOR", None)
        if processor is not None:
            found[processor.kind] = processor
    return found


def get_processor(kind):
    return registry().get(kind)


def retry_statuses(task):
    """The statuses from which the owner may retry this task by hand: its kind's, or the usual ones."""
    from tasks.models import Task

    processor = get_processor(task.kind)
    return tuple(processor.retry_statuses(task)) if processor is not None else Task.RETRYABLE_BY_USER
