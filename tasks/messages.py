"""Codes that travel from workers to viewers; each viewer translates them into their language."""

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

# Progress messages and stage names.
MESSAGES = {
    "waiting_slot": _("Waiting for a free slot"),
    "waiting_worker": _("Waiting for a worker"),
    "user_limit": ngettext_lazy(
        "You already have %(active)s task running (limit %(limit)s); this one will start when it finishes.",
        "You already have %(active)s tasks running (limit %(limit)s); this one will start when one finishes.",
        "active"),
    "site_busy": _("The site is running its maximum of %(limit)s tasks; this one will start when a slot frees up."),
    "starting": _("Starting"),
    "running": _("Running"),
    "retry_scheduled": _("Retrying in %(seconds)s s (attempt %(attempt)s of %(max_attempts)s)"),
    "interrupted": _("Interrupted by a restart of the server; it starts again as soon as a worker is free"),
    "tool_message": "%(text)s",
    "done": _("Done"),
    "ffmpeg_progress": _("Processed %(done)s of %(total)s seconds"),
    "finishing": _("Saving the result"),
    "checking_inputs": _("Checking the input videos"),
    "download_connecting": _("Connecting to the download daemon"),
    "download_progress": _("%(completed)s of %(total)s files downloaded, %(failed)s failed"),
    "strm_scanning": _("Reading the library folder"),
    "strm_listing": _("%(listed)s files listed, %(processed)s processed (%(rate)s files/s)"),
    "strm_deleting": _("Deleting %(count)s files that are gone from the source"),
    "strm_saving": _("Saving the sync state"),
    "qbt_connecting": _("Connecting to qBittorrent (%(name)s)"),
    "calibration_lookup": _("Looking up the torrents in qBittorrent (%(count)s)"),
    "calibration_waiting": _("Torrents waiting for metadata: %(pending)s (%(seconds)s s left)"),
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
    "downloading": _("Downloading"),
    "strm_scanning": _("Reading the library"),
    "strm_listing": _("Listing the source"),
    "strm_deleting": _("Deleting"),
    "strm_saving": _("Saving"),
    "qbt_connecting": _("Connecting"),
    "calibration_lookup": _("Looking up"),
    "calibration_metadata": _("Fetching metadata"),
}

# Errors a task can end with.
ERRORS = {
    "internal": _("An internal error stopped the task."),
    "worker_lost": _("The worker running this task was lost."),
    "disk_full": _("The server ran out of disk space while writing the result."),
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
    "aria2_not_configured": _("Downloads are not set up on this server: no aria2 daemon is configured."),
    "aria2_unavailable": _("The aria2 download daemon does not answer: %(reason)s"),
    "download_all_failed": _("None of the %(count)s files could be downloaded; the first error: %(error)s"),
    "download_quota_exceeded": _("The downloads do not fit in your storage quota of %(quota)s MB; delete old tasks "
                                 "to make room."),
    "output_quota_exceeded": _("The result %(name)s does not fit in your storage quota of %(quota)s MB; delete old "
                               "tasks to make room, then retry."),
    "strm_profile_missing": _("The STRM profile %(profile)s no longer exists or is disabled."),
    "strm_already_running": _("Another sync of this profile is running (task %(task_id)s)."),
    "strm_path_not_allowed": _("%(path)s is outside the folders allowed by MEDIACRAFT_STRM_ROOTS."),
    "strm_target_unusable": _("The library folder cannot be used: %(reason)s"),
    "strm_source_missing": _("The source folder does not exist: %(path)s"),
    "strm_source_auth": _("The WebDAV server refused the username or password (HTTP %(status)s)."),
    "strm_source_invalid": _("The source URL is not a WebDAV folder (HTTP %(status)s)."),
    "strm_source_unreachable": _("The WebDAV server could not be reached: %(reason)s"),
    "strm_listing_failed": _("Listing failed in %(count)s places, so nothing was deleted: %(paths)s"),
    "strm_source_empty": _("The source listed no media at all, so the %(count)s files it would remove were kept."),
    "strm_password_unreadable": _("The stored WebDAV password of profile %(profile)s cannot be decrypted (the secret "
                                  "key changed): an administrator must enter it again."),
    "qbt_connection_missing": _("The qBittorrent connection %(name)s no longer exists or is disabled."),
    "qbt_unreachable": _("qBittorrent (%(name)s) could not be reached: %(reason)s"),
    "qbt_login_failed": _("qBittorrent (%(name)s) refused the username or password; an administrator must correct "
                          "the connection (it is not tried again until then, as qBittorrent bans an address after "
                          "repeated failed logins)."),
    "qbt_banned": _("qBittorrent (%(name)s) has banned this server's address after too many failed logins; wait for "
                    "the ban to end or restart qBittorrent."),
    "qbt_api_error": _("qBittorrent (%(name)s) answered %(request)s unexpectedly: %(reason)s"),
    "qbt_password_unreadable": _("The stored password of the qBittorrent connection %(name)s cannot be decrypted "
                                 "(the site's secret key changed); an administrator must enter it again."),
    "calibration_unknown": _("qBittorrent does not know the torrent %(hash)s, and no magnet link was given to fetch "
                             "its metadata."),
    "calibration_no_metadata": _("qBittorrent knows the torrent %(hash)s but has no metadata for it, and it is stopped."),
    "calibration_refused": _("qBittorrent refused the magnet link of %(hash)s."),
}


def render(catalogue, code, params=None):
    """Translate a code with its parameters; an unknown code or bad parameters never raise."""
    if not code:
        return ""
    template = catalogue.get(code)
    if template is None:
        return str(code)
    if params:
        try:
            return str(template % params)  # a plural (ngettext_lazy) picks its form by the count in params
        except (KeyError, TypeError, ValueError):
            return str(template)
    text = str(template)
    return text.replace("%%", "%") if "%(" not in text else text
