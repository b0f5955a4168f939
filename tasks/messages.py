"""Codes that travel from workers to viewers; each viewer translates them into their language."""

from django.utils.translation import gettext_lazy as _

# Progress messages and stage names.
MESSAGES = {
    "waiting_slot": _("Waiting for a free slot"),
    "waiting_worker": _("Waiting for a worker"),
    "user_limit": _("You already have %(active)s tasks running (limit %(limit)s); this one will start when one finishes."),
    "site_busy": _("The site is running its maximum of %(limit)s tasks; this one will start when a slot frees up."),
    "starting": _("Starting"),
    "running": _("Running"),
    "retry_scheduled": _("Retrying in %(seconds)s s (attempt %(attempt)s of %(max_attempts)s)"),
    "tool_message": "%(text)s",
    "done": _("Done"),
    "ffmpeg_progress": _("Processed %(done)s of %(total)s seconds"),
    "finishing": _("Saving the result"),
    "checking_inputs": _("Checking the input videos"),
}

STAGES = {
    "": "",
    "waiting": _("Waiting"),
    "starting": _("Starting"),
    "running": _("Running"),
    "finishing": _("Finishing"),
    "done": _("Done"),
    "checking": _("Checking"),
    "encoding": _("Encoding"),
    "joining": _("Joining"),
}

# Errors a task can end with.
ERRORS = {
    "internal": _("An internal error stopped the task."),
    "worker_lost": _("The worker running this task was lost."),
    "timeout": _("The task ran longer than its limit of %(timeout)s seconds."),
    "cancelled": _("The task was cancelled."),
    "command_failed": _("The tool exited with code %(exit_code)s."),
    "command_killed": _("The tool was killed by signal %(signal)s."),
    "command_not_started": _("The tool could not be started: %(reason)s"),
    "command_bad_result": _("The tool's last line looked like JSON but could not be parsed."),
    "kind_unavailable": _("This kind of task can no longer run here."),
    "transient": _("A temporary error occurred: %(reason)s"),
    "ffmpeg_failed": _("ffmpeg failed (exit code %(exit_code)s)."),
    "input_missing": _("An input file is missing on the server."),
}


def render(catalogue, code, params=None):
    """Translate a code with its parameters; an unknown code or bad parameters never raise."""
    if not code:
        return ""
    template = catalogue.get(code)
    if template is None:
        return str(code)
    text = str(template)
    if params:
        try:
            return text % params
        except (KeyError, TypeError, ValueError):
            return text
    return text.replace("%%", "%") if "%(" not in text else text
