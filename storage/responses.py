"""File downloads with HTTP Range (so videos seek) and an RFC 6266 Content-Disposition."""

import mimetypes
import re

from django.http import FileResponse, HttpResponse
from django.utils.http import content_disposition_header

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangedFile:
    """Iterate a byte range of a file in chunks."""

    def __init__(self, path, start, length, chunk=256 * 1024):
        self.f = open(path, "rb")
        self.f.seek(start)
        self.left = length
        self.chunk = chunk

    def __iter__(self):
        try:
            while self.left > 0:
                data = self.f.read(min(self.chunk, self.left))
                if not data:
                    break
                self.left -= len(data)
                yield data
        finally:
            self.f.close()

    def close(self):
        self.f.close()


def file_response(request, path, name, size, *, inline=False):
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    disposition = content_disposition_header(not inline, name)
    header = request.headers.get("Range", "")
    match = RANGE_RE.match(header.strip()) if header else None
    if header and match and (match.group(1) or match.group(2)):
        first, last = match.groups()
        if first == "":  # the last N bytes
            length = min(int(last), size)
            start, end = size - length, size - 1
        else:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        if start >= size or start > end:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        from django.http import StreamingHttpResponse

        response = StreamingHttpResponse(RangedFile(path, start, end - start + 1), status=206,
                                         content_type=content_type)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    else:
        response = FileResponse(open(path, "rb"), content_type=content_type)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = disposition
    response["X-Content-Type-Options"] = "nosniff"
    return response
