"""File downloads with HTTP Range (so videos seek) and an RFC 6266 Content-Disposition, and
several files as one ZIP streamed as it is written."""

import asyncio
import mimetypes
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

from mediacraft.numbers import parse_digits

RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


def streamed(request, chunks):
    """What a streaming response should iterate. Under ASGI Django reads a synchronous iterator
    to its end, into memory, before it sends a byte (StreamingHttpResponse.__aiter__): a 4 GB
    video would sit in the web process. So there it gets an asynchronous iterator that reads
    each chunk in a thread; elsewhere (WSGI, the test client) the chunks as they are."""
    return _pulled(iter(chunks)) if isinstance(request, ASGIRequest) else chunks


async def _pulled(chunks):
    """chunks, read in a thread of their own: when the client goes away in the middle of a read,
    closing them (the file, the ZIP writer) waits for that read in the same thread."""
    loop = asyncio.get_running_loop()
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mediacraft-download")
    done = object()
    try:
        while (part := await loop.run_in_executor(reader, next, chunks, done)) is not done:
            yield part
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            reader.submit(close)
        reader.shutdown(wait=False)


class RangedFile:
    """Iterate a byte range of a file in chunks."""

    def __init__(self, path, start, length, chunk=1024 * 1024):
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


def plays_inline(content_type):
    """A type a browser shows as media, never as a page: a stored file's name is the user's or a
    remote server's to choose, and an HTML or SVG "video" opened inline would run its scripts as
    this site."""
    return content_type.startswith(("video/", "audio/", "image/")) and content_type != "image/svg+xml"


def _position(digits, size):
    """A Range header's number; one with more digits than the size is past the end, read as the size."""
    value = parse_digits(digits, len(str(size)))
    return size if value is None else value


def file_response(request, path, name, size, *, inline=False):
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    disposition = content_disposition_header(not (inline and plays_inline(content_type)), name)
    header = request.headers.get("Range", "")
    match = RANGE_RE.match(header.strip()) if header else None
    if header and match and (match.group(1) or match.group(2)):
        first, last = match.groups()
        if first == "":  # the last N bytes
            length = min(_position(last, size), size)
            start, end = size - length, size - 1
        else:
            start = _position(first, size)
            end = min(_position(last, size), size - 1) if last else size - 1
        if start >= size or start > end:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        response = StreamingHttpResponse(streamed(request, RangedFile(path, start, end - start + 1)), status=206,
                                         content_type=content_type)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    else:
        response = StreamingHttpResponse(streamed(request, RangedFile(path, 0, size)), content_type=content_type)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = disposition
    response["X-Content-Type-Options"] = "nosniff"
    return response


class _Written:
    """A write-only stream for zipfile: what was written since the last take()."""

    def __init__(self):
        self.parts = []

    def write(self, data):
        self.parts.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self):
        data, self.parts = b"".join(self.parts), []
        return data


def zip_stream(entries, chunk=256 * 1024):
    """The bytes of a ZIP of these files, chunk by chunk, never more than a chunk in memory:
    entries are (name in the archive, path, size, datetime). Stored, not compressed (media files
    are compressed already); ZIP64 where a file needs it; sizes and CRCs follow each file."""
    out = _Written()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, path, size, when in entries:
            info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
            info.file_size = size  # tells the writer whether the entry needs ZIP64
            with open(path, "rb") as src, archive.open(info, "w") as dst:
                while data := src.read(chunk):
                    dst.write(data)
                    yield out.take()
            yield out.take()
    yield out.take()


def archive_names(names):
    """Names for the archive, one per file, in order: a repeated name gets " (2)", " (3)"..."""
    seen, unique = set(), []
    for name in names:
        base = name.replace("/", "_").replace("\\", "_") or "file"
        stem, dot, suffix = base.rpartition(".") if "." in base.lstrip(".") else (base, "", "")
        candidate, n = base, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{stem} ({n}){dot}{suffix}"
        seen.add(candidate.lower())
        unique.append(candidate)
    return unique


def zip_response(request, entries, filename):
    response = StreamingHttpResponse(streamed(request, zip_stream(entries)), content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    return response
