"""Reads for calibration. A calibration task is looked up through tasks.selectors.task_get_for_user,
so anyone else's task is a 404."""

from django.utils.translation import gettext as _

from mediacraft.numbers import row_id
from tasks import selectors as task_selectors
from tasks.errors import InvalidParams, NotFound
from tasks.models import Task, TaskKind
from torrents.models import QbittorrentConnection, SeedStatus

S = Task.Status

# Engine statuses as seed 004's clients know them: waiting ones are pending; a cancelled task
# is failed (seed 004 had no cancel), with the cancellation as its error.
SEED_STATUS = {
    S.PENDING: SeedStatus.PENDING,
    S.QUEUED: SeedStatus.PENDING,
    S.RETRYING: SeedStatus.PENDING,
    S.RUNNING: SeedStatus.RUNNING,
    S.COMPLETED: SeedStatus.COMPLETED,
    S.FAILED: SeedStatus.FAILED,
    S.CANCELLED: SeedStatus.FAILED,
    S.TIMEOUT: SeedStatus.TIMEOUT,
}


def connection_resolve(ref):
    """An enabled connection from its id or name; without one, the only enabled connection."""
    enabled = QbittorrentConnection.objects.filter(enabled=True)
    if ref is None or ref == "":
        found = list(enabled[:2])
        if len(found) == 1:
            return found[0]
        if not found:
            raise InvalidParams(
                _("No qBittorrent connection is set up yet: an administrator creates one in the admin."), "connection")
        names = ", ".join(enabled.values_list("name", flat=True)[:20])
        raise InvalidParams(_("Choose a qBittorrent connection: one of %(names)s.") % {"names": names}, "connection")
    if isinstance(ref, bool) or not isinstance(ref, (str, int)) or (isinstance(ref, str) and "\x00" in ref):
        raise InvalidParams(_("connection must be a connection's name or id."), "connection")
    connection = None
    if (pk := row_id(ref)) is not None:
        connection = enabled.filter(pk=pk).first()
    if connection is None and isinstance(ref, str):
        connection = enabled.filter(name=ref).first()
    if connection is None:
        raise InvalidParams(
            _("There is no enabled qBittorrent connection %(name)s.") % {"name": str(ref)[:60]}, "connection")
    return connection


def connection_for_run(connection_id):
    return QbittorrentConnection.objects.filter(pk=connection_id, enabled=True).first()


def connection_get(connection_id):
    return QbittorrentConnection.objects.filter(pk=connection_id).first()


def calibration_task_get_for_user(*, user, task_id):
    task = task_selectors.task_get_for_user(user=user, task_id=task_id)
    if task.kind != TaskKind.CALIBRATION:
        raise NotFound()
    return task
