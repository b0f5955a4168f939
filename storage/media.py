"""What ffmpeg says about a file. imageio-ffmpeg ships ffmpeg without ffprobe, so this parses
ffmpeg's own description of its inputs."""

import functools
import logging
import re
import subprocess
import threading

from django.utils.translation import gettext_lazy as _

log = logging.getLogger(__name__)


class MediaError(Exception):
    """Not a video ffmpeg can decode. str(): why, in the viewer's language and without ffmpeg's
    words, which name the file by its path on the server; those are logged for the operator."""

    def __init__(self, reason, ffmpeg_said="", path=None):
        super().__init__(reason)
        self.reason = reason
        if ffmpeg_said:
            log.info("ffmpeg on %s: %s", path, ffmpeg_said)

    def __str__(self):
        return str(self.reason)


NOT_MEDIA = _("not a media format ffmpeg reads")
NO_VIDEO = _("it holds no video stream")
DAMAGED = _("its video cannot be decoded to the end: the file may be truncated or damaged")
INCOMPLETE = _("the file is incomplete (its index is missing)")
NO_FRAME = _("the video cannot be decoded at that time")


def ffmpeg_exe():
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


DURATION_RE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
VIDEO_RE = re.compile(r"Stream #\d+:\d+.*?: Video: (\w+)(.*)")
AUDIO_RE = re.compile(r"Stream #\d+:\d+.*?: Audio: (\w+)(.*)")
SIZE_RE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")
FPS_RE = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
ROTATION_RE = re.compile(r"rotation of (-?[\d.]+) degrees")
RATE_RE = re.compile(r"(\d+) Hz")
CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "4.0": 4, "5.0": 5, "5.1": 6, "6.1": 7, "7.1": 8}


def _fields(rest):
    """Split ffmpeg's stream description on top-level commas (not those inside parentheses)."""
    parts, depth, current = [], 0, ""
    for ch in rest:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


def parse_info(text):
    """Media information from `ffmpeg -i`'s stderr: the first video and audio streams."""
    info = {"duration": None, "width": None, "height": None, "fps": None, "vcodec": None, "vprofile": None,
            "pix_fmt": None,
            "acodec": None, "sample_rate": None, "channels": None, "has_audio": False, "rotation": 0}
    match = DURATION_RE.search(text)
    if match:
        h, m, s = match.groups()
        info["duration"] = round(int(h) * 3600 + int(m) * 60 + float(s), 3)
    video = VIDEO_RE.search(text)
    if video:
        info["vcodec"] = video.group(1)
        # "h264 (High) (avc1 / 0x…)": the first parenthesis is the profile unless it is the codec tag.
        profile = re.match(r"\s*\(([^()]+)\)", video.group(2))
        if profile and "/" not in profile.group(1):
            info["vprofile"] = profile.group(1).strip()
        fields = _fields(video.group(2))
        for field in fields[1:]:
            word = field.split("(")[0].strip()
            if info["pix_fmt"] is None and re.fullmatch(r"[a-z0-9_]+", word) and ("yuv" in word or "rgb" in word
                                                                                  or "gray" in word or "nv" in word):
                info["pix_fmt"] = word
        size = SIZE_RE.search(video.group(2))
        if size:
            info["width"], info["height"] = int(size.group(1)), int(size.group(2))
        fps = FPS_RE.search(video.group(2))
        if fps:
            info["fps"] = round(float(fps.group(1)) * (1000 if fps.group(2) else 1), 3)
    rotation = ROTATION_RE.search(text)
    if rotation:
        info["rotation"] = int(round(float(rotation.group(1)))) % 360
        if info["rotation"] in (90, 270) and info["width"]:
            # ffmpeg auto-rotates when decoding: what users see and filters get is upright.
            info["width"], info["height"] = info["height"], info["width"]
    audio = AUDIO_RE.search(text)
    if audio:
        info["has_audio"] = True
        info["acodec"] = audio.group(1)
        rate = RATE_RE.search(audio.group(2))
        info["sample_rate"] = int(rate.group(1)) if rate else None
        for field in _fields(audio.group(2)):
            layout = field.split("(")[0].strip()
            if layout in CHANNELS:
                info["channels"] = CHANNELS[layout]
                break
            count = re.fullmatch(r"(\d+) channels", layout)
            if count:
                info["channels"] = int(count.group(1))
                break
    return info


def probe(path, timeout=60, verify=True):
    """Media information of a video ffmpeg can decode from start to end, or MediaError.
    verify=False skips the decoding checks (for files ffmpeg itself just wrote)."""
    exe = ffmpeg_exe()
    run = subprocess.run([exe, "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True,
                         errors="replace", timeout=timeout)
    text = run.stderr
    if "moov atom not found" in text:
        raise MediaError(INCOMPLETE, _last_lines(text), path)
    if "Invalid data found" in text or "Stream #" not in text:
        raise MediaError(NOT_MEDIA, _last_lines(text), path)
    info = parse_info(text)
    if not info["vcodec"] or not info["width"]:
        raise MediaError(NO_VIDEO)
    if not verify:
        return info
    # Decode the first frame and the last second: catches unreadable and truncated files.
    checks = [["-i", str(path), "-map", "0:v:0", "-frames:v", "1"]]
    if info["duration"] and info["duration"] > 1:
        checks.append(["-sseof", "-1", "-i", str(path), "-map", "0:v:0"])
    for args in checks:
        run = subprocess.run([exe, "-hide_banner", "-nostdin", "-v", "error", *args, "-f", "null", "-"],
                             capture_output=True, text=True, errors="replace", timeout=timeout)
        if run.returncode != 0 or _serious(run.stderr):
            raise MediaError(DAMAGED, _last_lines(run.stderr) or f"exit status {run.returncode}", path)
    return info


def _serious(stderr):
    return any(word in stderr for word in ("Invalid data", "partial file", "Error while decoding", "corrupt",
                                           "error reading header", "Truncat", "End of file"))


def _last_lines(text, count=3):
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    useful = [line for line in lines if "At least one output file" not in line]
    return " | ".join(useful[-count:])


class PreviewBusy(Exception):
    """Every preview slot of this process stayed taken for the whole wait."""


@functools.cache
def preview_slots(count):
    """This process's preview slots: a frame costs an ffmpeg's seek and decode, and a few drags on
    the pages' sliders must not take every core of the machine."""
    return threading.BoundedSemaphore(count)


def frame_jpeg(path, *, second=0.0, width=960, timeout=20):
    """One frame as JPEG bytes (for drawing logo boxes on and comparing results), made in one of
    MEDIACRAFT_PREVIEW_CONCURRENCY slots; PreviewBusy after MEDIACRAFT_PREVIEW_WAIT_SECONDS."""
    from django.conf import settings

    slots = preview_slots(settings.MEDIACRAFT_PREVIEW_CONCURRENCY)
    if not slots.acquire(timeout=settings.MEDIACRAFT_PREVIEW_WAIT_SECONDS):
        raise PreviewBusy()
    try:
        return _frame_jpeg(path, second, width, timeout)
    finally:
        slots.release()


def _frame_jpeg(path, second, width, timeout):
    run = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-ss", f"{max(0.0, second):.3f}", "-i", str(path),
         "-frames:v", "1", "-vf", f"scale='min({width},iw)':-2", "-q:v", "3", "-threads", "1", "-f", "image2pipe",
         "-vcodec", "mjpeg", "-"],
        capture_output=True, timeout=timeout,
    )
    if run.returncode != 0 or not run.stdout:
        raise MediaError(NO_FRAME, _last_lines(run.stderr.decode(errors="replace")), path)
    return run.stdout
