"""Writes for calibration: submitting tasks, and a connection's refused-login marker."""

from django.utils import timezone

from tasks import services as task_services
from tasks.models import TaskKind
from torrents.models import QbittorrentConnection


def calibration_submit(*, owner, hashes, connection=None, timeout=None, owner_factory=None):
    """A calibration task of these info hashes or magnet links (validated by the processor)."""
    params = {"hashes": hashes}
    if connection not in (None, ""):
        params["connection"] = connection
    return task_services.task_submit(owner=owner, owner_factory=owner_factory, kind=TaskKind.CALIBRATION,
                                     params=params, timeout=timeout)


def connection_mark_login_failed(*, connection_id, fingerprint):
    """Remember that qBittorrent refused these credentials, so no task tries them again (five
    refusals get this site's address banned) until an administrator changes or tests them."""
    QbittorrentConnection.objects.filter(pk=connection_id).update(
        login_failed_at=timezone.now(), login_failed_fingerprint=fingerprint)


def connection_clear_login_failure(*, connection_id):
    QbittorrentConnection.objects.filter(pk=connection_id).exclude(login_failed_fingerprint="").update(
        login_failed_at=None, login_failed_fingerprint="")


def connection_test(*, connection):
    """Log in and ask qBittorrent who it is: {"version", "api_version", "torrents", "default_save_path"}.
    Raises QbtError or PasswordUnreadable. A test always tries the login, and its outcome sets or
    clears the refused-login marker."""
    from torrents.qbittorrent import QbtClient, QbtLoginFailed

    password = connection.get_password()
    with QbtClient(connection.url, connection.username, password, verify=connection.verify_tls,
                   timeout=(5, 10)) as client:
        try:
            client.login()
            found = {"version": client.version(), "api_version": client.api_version(),
                     "default_save_path": client.default_save_path(), "torrents": len(client.torrents())}
        except QbtLoginFailed:
            if connection.username:
                connection_mark_login_failed(connection_id=connection.pk,
                                             fingerprint=connection.credentials_fingerprint())
            raise
    connection_clear_login_failure(connection_id=connection.pk)
    return found
