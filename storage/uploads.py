"""Uploads stream straight to disk under MEDIA_ROOT/tmp (same filesystem: the final move is a
rename), hashed on the way, and stop being stored past MEDIACRAFT_MAX_UPLOAD_MB."""

import hashlib
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile, StopFutureHandlers


STAGED = "mediacraft.staged_uploads"


class StagedUpload(UploadedFile):
    """An uploaded file already on disk, with its SHA-256. `path` is moved by storage.services."""

    def __init__(self, path, name, content_type, size, sha256, charset=None):
        super().__init__(open(path, "rb"), name, content_type, size, charset)
        self.path = Path(path)
        self.sha256 = sha256

    def discard(self):
        self.close()
        self.path.unlink(missing_ok=True)


class StreamingUploadHandler(FileUploadHandler):
    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        tmp = Path(settings.MEDIA_ROOT) / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        fd, self.temp_path = tempfile.mkstemp(dir=tmp, prefix="upload-")
        self.out = os.fdopen(fd, "wb")
        # Noted on the request before a byte is written: when parsing fails later (too many files
        # or fields, a malformed body, a client gone), Django drops the files it had, and only
        # this list still knows them.
        self.request.META.setdefault(STAGED, []).append((self.temp_path, self.out))
        self.hash = hashlib.sha256()
        self.received = 0
        self.limit = settings.MEDIACRAFT_MAX_UPLOAD_MB * 1024 * 1024
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self._abandon()
            # Remember why, so the view answers 413 naming the file instead of silently dropping it.
            self.request.META.setdefault("mediacraft.too_large", []).append(self.file_name)
            raise SkipFile()
        self.out.write(raw_data)
        self.hash.update(raw_data)

    def file_complete(self, file_size):
        self.out.close()
        return StagedUpload(self.temp_path, self.file_name, self.content_type, file_size, self.hash.hexdigest(),
                            self.charset)

    def upload_interrupted(self):
        if hasattr(self, "out"):
            self._abandon()

    def _abandon(self):
        if not self.out.closed:
            self.out.close()
        Path(self.temp_path).unlink(missing_ok=True)


class DiscardUploadsMiddleware:
    """Remove every upload of the request that no view kept: refused by the CSRF check before
    any view ran, refused by a view, sent under a field name nobody reads, or written before the
    body's parsing failed. Storing an upload moves its file away, so this only ever removes what
    would otherwise stay in MEDIA_ROOT/tmp."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        finally:
            files = getattr(request, "_files", None)  # set only once the body was parsed
            for upload in (f for _name, uploads in (files.lists() if files else ()) for f in uploads):
                if isinstance(upload, StagedUpload):
                    upload.discard()
            for path, out in request.META.get(STAGED, ()):
                out.close()
                Path(path).unlink(missing_ok=True)
