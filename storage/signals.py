import shutil

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from storage.models import StoredFile


@receiver(post_delete, sender=StoredFile)
def remove_file_from_disk(sender, instance, **kwargs):
    """However a row goes (task deleted, expired, user deleted), its file goes too, after commit."""
    path = instance.abs_path
    own_folder = instance.path.startswith("uploads/")  # uploads/<owner>/<file id>/<name>

    def remove():
        if own_folder:
            shutil.rmtree(path.parent, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    transaction.on_commit(remove, robust=True)
