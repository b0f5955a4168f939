import uuid

from django.db.models import Max, Sum
from django.db.models.functions import Coalesce

from storage.models import StoredFile
from tasks.errors import NotFound


def file_get_for_user(*, user, file_id):
    """The user's own file, or 404 for anyone else (and for malformed ids)."""
    try:
        pk = uuid.UUID(str(file_id))
    except ValueError:
        raise NotFound() from None
    if user is None or not user.is_authenticated:
        raise NotFound()
    stored = StoredFile.objects.filter(pk=pk, owner=user).first()
    if stored is None:
        raise NotFound()
    return stored


def used_bytes(owner):
    """Bytes of the owner's stored files (uploads and results), hard links of one file counted
    once; owner: a user or its id."""
    data = StoredFile.objects.filter(owner=owner).annotate(data=Coalesce("blob", "id")).values("data")
    return data.annotate(data_size=Max("size")).aggregate(total=Sum("data_size"))["total"] or 0


def storage_usage(*, user):
    """What the user's files take of their quota, in bytes (nothing for an anonymous visitor)."""
    from django.conf import settings

    used = used_bytes(user) if user is not None and user.is_authenticated else 0
    return {"used_bytes": used, "quota_bytes": int(settings.MEDIACRAFT_USER_QUOTA_MB * 1024 * 1024)}


def files_of_user(*, user, ids):
    """The user's own files with these ids, in that order (ids of no file of theirs, or of none
    at all, are left out)."""
    valid = []
    for i in ids:
        try:
            valid.append(uuid.UUID(str(i)))
        except ValueError:
            pass
    found = {str(f.pk): f for f in StoredFile.objects.filter(pk__in=valid, owner=user)} if user is not None else {}
    return [found[i] for i in ids if i in found]


def files_of_task(task_id, role):
    return list(StoredFile.objects.filter(task_id=task_id, role=role).order_by("position", "created_at"))


def inputs_for_submit(*, user, files, params, minimum, maximum):
    """The inputs of a new task: files uploaded with it, else the user's own input files named
    by id in params["files"]: staged uploads, or inputs of their earlier tasks (which the new
    task gets a copy of: storage.services.files_reuse). Order is kept."""
    from django.utils.translation import gettext as _

    from tasks.errors import InvalidParams

    if not files:
        ids = params.get("files", [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InvalidParams(_("files must be a list of uploaded file ids."), "files")
        found = {}
        if user is not None and user.is_authenticated and ids:
            valid = []
            for i in ids:
                try:
                    valid.append(uuid.UUID(i))
                except ValueError:
                    raise InvalidParams(_("Unknown file: %(id)s.") % {"id": i[:40]}, "files") from None
            found = {str(f.pk): f for f in StoredFile.objects.filter(pk__in=valid, owner=user,
                                                                      role=StoredFile.Role.INPUT)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise InvalidParams(_("Unknown file: %(id)s.") % {"id": missing[0][:40]}, "files")
        if len(set(ids)) != len(ids):
            raise InvalidParams(_("The same file is listed twice."), "files")
        files = [found[i] for i in ids]
    if not minimum <= len(files) <= maximum:
        if minimum == maximum:
            message = _("This task takes exactly %(n)s video file(s).") % {"n": minimum}
        else:
            message = _("This task takes %(low)s to %(high)s video files.") % {"low": minimum, "high": maximum}
        raise InvalidParams(message, "files")
    return files
