"""Writes for stored files: uploads in, results out, attachment to tasks, expiry."""

import hashlib
import logging
import os
import re
import shutil
import time
import unicodedata
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from mediacraft import sql
from storage.media import MediaError, probe
from storage.models import StoredFile
from storage.selectors import used_bytes
from tasks.errors import ApiError, InvalidParams, TaskError

log = logging.getLogger(__name__)
MB = 1024 * 1024
RESERVED = re.compile(r'[<>:"/\\|?*]')


def safe_name(original, default="file"):
    """A file name safe on any filesystem: no folders, no control characters, no reserved
    characters, at most 150 bytes; Unicode letters stay (for display and download)."""
    name = unicodedata.normalize("NFC", str(original or ""))
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = RESERVED.sub("_", name).strip().lstrip(".").strip()
    if not name:
        return default
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 10:
        stem, ext = name, ""
    ext = f".{ext}" if ext else ""
    while len((stem + ext).encode()) > 150:
        stem = stem[:-1]
    return (stem or default) + ext


def check_free_disk(needed=0):
    root = Path(settings.MEDIA_ROOT)
    while not root.exists() and root != root.parent:  # a fresh site: the folder comes with the first file
        root = root.parent
    free = shutil.disk_usage(root).free
    if free - needed < settings.MEDIACRAFT_MIN_FREE_DISK_MB * MB:
        raise ApiError("disk_full", _("The server is low on disk space; try again later."), status=507)


def check_quota(owner, size, name):
    """Refuse a file that would not fit in the owner's quota (a fast answer before the work: the
    row is then stored by _create_within_quota, which asks again under the owner's lock)."""
    if used_bytes(owner) + size > settings.MEDIACRAFT_USER_QUOTA_MB * MB:
        raise ApiError("quota_exceeded", _("%(name)s does not fit in your storage quota of %(quota)s MB; delete old "
                                           "tasks to make room.") % {"name": name, "quota": settings.MEDIACRAFT_USER_QUOTA_MB},
                       status=413, field="files")


def _create_within_quota(owner, name, **fields):
    """Store a new file's row if it still fits in the owner's quota: the check and the insert
    under one lock, so that uploads racing each other cannot all fit in the same room."""
    with transaction.atomic():
        sql.lock(sql.STORAGE, owner.pk)
        check_quota(owner, fields["size"], name)
        return StoredFile.objects.create(owner=owner, **fields)


def file_store_upload(*, owner, upload, video=True):
    """Keep a streamed upload as the owner's input file; refuse empty, oversized, over-quota
    and undecodable files with a message naming the file. Nothing stays behind on refusal."""
    name = safe_name(upload.name, default="upload")
    path = getattr(upload, "path", None)
    try:
        if upload.size == 0:
            raise InvalidParams(_("%(name)s is empty.") % {"name": name}, "files")
        check_quota(owner, upload.size, name)
        check_free_disk(upload.size)
        file_id = uuid.uuid4()
        relative = f"uploads/{owner.pk}/{file_id}/{name}"
        target = Path(settings.MEDIA_ROOT) / relative
        target.parent.mkdir(parents=True)
        if path is not None:
            upload.close()
            os.replace(path, target)
            digest = upload.sha256
        else:  # a handler other than ours (tests, admin): copy in chunks
            digest = _copy(upload, target)
        try:
            media = probe(target) if video else {}
        except MediaError as exc:
            shutil.rmtree(target.parent, ignore_errors=True)
            raise InvalidParams(_("%(name)s is not a video that can be decoded (%(reason)s).")
                                % {"name": name, "reason": str(exc)[:300]}, "files") from None
        from tasks.metrics import incr

        incr("mediacraft_upload_bytes_total", amount=upload.size)
        try:
            return _create_within_quota(
                owner, name, id=file_id, role=StoredFile.Role.INPUT, original_name=str(upload.name)[:255] or name,
                stored_name=name, path=relative, size=upload.size, sha256=digest, media=media,
                expires_at=timezone.now() + timedelta(hours=settings.MEDIACRAFT_UPLOAD_TTL_HOURS),
            )
        except ApiError:
            shutil.rmtree(target.parent, ignore_errors=True)
            raise
    finally:
        if path is not None:
            Path(path).unlink(missing_ok=True)


def _copy(upload, target):
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def files_reuse(*, owner, file_ids):
    """The inputs of a new task, by id (validated: the owner's own input files): a staged upload
    stays itself; an input of an earlier task becomes a new staged upload of the same content, a
    hard link where the filesystem allows (so a copy of a task takes no room on disk, nor of the
    quota while the file it links to is kept). Returns (ids, the new files): the caller deletes
    those if the task is refused."""
    by_id = {str(f.pk): f for f in StoredFile.objects.filter(pk__in=file_ids, owner=owner)}
    gone = [i for i in file_ids if i not in by_id]
    if gone:  # deleted since the task's parameters were validated
        raise InvalidParams(_("Unknown file: %(id)s.") % {"id": gone[0][:40]}, "files")
    sources = [by_id[i] for i in file_ids if by_id[i].task_id is not None]
    if not sources:
        return list(file_ids), []
    copies = []
    try:
        for source in sources:
            copies.append(_input_copy(owner, source))
    except BaseException:
        for stored in copies:
            stored.delete()
        raise
    renamed = {str(s.pk): str(c.pk) for s, c in zip(sources, copies)}
    return [renamed.get(i, i) for i in file_ids], copies


def _input_copy(owner, source):
    if not source.abs_path.is_file():
        raise InvalidParams(_("%(name)s is no longer on the server; upload it again.") % {"name": source.original_name},
                            "files")
    file_id = uuid.uuid4()
    relative = f"uploads/{owner.pk}/{file_id}/{source.stored_name}"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True)
    try:
        try:
            os.link(source.abs_path, target)
            blob = source.blob or source.pk
        except OSError:  # no hard links here (another filesystem, a link limit): a real copy
            check_quota(owner, source.size, source.original_name)
            check_free_disk(source.size)
            shutil.copyfile(source.abs_path, target)
            blob = None
        fields = dict(
            id=file_id, blob=blob, role=StoredFile.Role.INPUT, original_name=source.original_name,
            stored_name=source.stored_name, path=relative, size=source.size, sha256=source.sha256, media=source.media,
            expires_at=timezone.now() + timedelta(hours=settings.MEDIACRAFT_UPLOAD_TTL_HOURS),
        )
        if blob is None:
            return _create_within_quota(owner, source.original_name, **fields)
        return StoredFile.objects.create(owner=owner, **fields)  # a link: it takes no more room
    except BaseException:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise


class FilesTaken(Exception):
    """A staged input went to another task between files_reuse and files_attach."""


def files_attach(*, task, file_ids):
    """Give the task its inputs, in order; they now live and expire with the task. Raises
    FilesTaken, for the caller to roll back, if one is no longer staged."""
    for position, file_id in enumerate(file_ids):
        if not StoredFile.objects.filter(pk=file_id, owner=task.owner_id, task=None, role=StoredFile.Role.INPUT).update(
            task=task, position=position, expires_at=None
        ):
            raise FilesTaken(file_id)


def file_register_output(*, task, path, name):
    """Record a finished result file of a task (it must be inside MEDIA_ROOT). A result that
    does not fit in the owner's quota is deleted and ends the task with a clear error."""
    from tasks.selectors import task_owner_id

    path = Path(path)
    relative = path.resolve().relative_to(Path(settings.MEDIA_ROOT).resolve()).as_posix()
    size = path.stat().st_size
    # The owner as the database has it now, not as the job loaded it: a visitor who logged in
    # meanwhile was merged into the account (users.services.account_login) and is gone.
    owner_id = task_owner_id(task_id=task.pk) or task.owner_id
    _check_output_quota(owner_id, path, size, name)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MB), b""):
            digest.update(chunk)
    try:
        media = probe(path, verify=False) if path.suffix.lower() in (".mp4", ".mkv", ".mov", ".webm") else {}
    except MediaError:
        media = {}
    position = StoredFile.objects.filter(task=task, role=StoredFile.Role.OUTPUT).count()
    fields = dict(task=task, role=StoredFile.Role.OUTPUT, position=position, original_name=name[:255],
                  stored_name=path.name, path=relative, size=size, sha256=digest.hexdigest(), media=media)
    for attempt in range(3):
        if attempt:  # merged while the file was hashed: the account it went to
            owner_id = task_owner_id(task_id=task.pk) or owner_id
        try:
            with transaction.atomic():
                sql.lock(sql.STORAGE, owner_id)  # as _create_within_quota
                _check_output_quota(owner_id, path, size, name)
                return StoredFile.objects.create(owner_id=owner_id, **fields)
        except IntegrityError:
            if attempt == 2 or task_owner_id(task_id=task.pk) in (None, owner_id):
                raise


def _check_output_quota(owner_id, path, size, name):
    """A result that does not fit in the owner's quota is deleted and ends the task."""

    used = used_bytes(owner_id)
    if used + size > settings.MEDIACRAFT_USER_QUOTA_MB * MB:
        path.unlink(missing_ok=True)
        raise TaskError("output_quota_exceeded", {"name": name, "quota": settings.MEDIACRAFT_USER_QUOTA_MB},
                        detail=f"stored {used} B + result {size} B")


def files_delete_outputs(*, task_id):
    StoredFile.objects.filter(task_id=task_id, role=StoredFile.Role.OUTPUT).delete()


def file_delete(*, stored):
    if stored.task_id is not None:
        raise ApiError("file_in_use", _("This file belongs to a task; delete the task instead."), status=409)
    stored.delete()


def cleanup_expired_files():
    """Delete unattached uploads past their expiry, and stray temporary uploads over a day old."""
    removed, _rows = StoredFile.objects.filter(task=None, expires_at__lte=timezone.now()).delete()
    tmp = Path(settings.MEDIA_ROOT) / "tmp"
    if tmp.is_dir():
        cutoff = time.time() - 24 * 3600
        for stray in tmp.iterdir():
            try:
                if stray.stat().st_mtime < cutoff:
                    stray.unlink()
            except OSError:
                pass
    return removed
