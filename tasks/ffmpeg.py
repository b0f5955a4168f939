"""Running ffmpeg inside a task: progress from `-progress pipe:1`, meaningful errors."""

import re
from pathlib import Path

from tasks.errors import TaskError

SPEED_RE = re.compile(r"([\d.]+)x")
NO_SPACE = "No space left on device"  # ffmpeg's words for ENOSPC
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac"}


def ffmpeg_exe():
    from storage.media import ffmpeg_exe as exe

    return exe()


class ProgressParser:
    """Turns ffmpeg's key=value progress blocks into ctx.progress calls: percent from
    out_time_us over the known duration (clamped), fps, speed and ETA as stats."""

    def __init__(self, ctx, total_seconds, stage, start_percent=0.0, span=100.0):
        self.ctx = ctx
        self.total = max(float(total_seconds or 0), 0.001)
        self.stage = stage
        self.start, self.span = start_percent, span
        self.block = {}

    def feed(self, line):
        key, sep, value = line.partition("=")
        if not sep:
            return
        self.block[key.strip()] = value.strip()
        if key.strip() == "progress":
            self.report(self.block)
            self.block = {}

    def report(self, block):
        try:
            done = max(0.0, int(block.get("out_time_us", "0")) / 1e6)
        except ValueError:
            done = 0.0
        fraction = min(1.0, done / self.total)
        speed_match = SPEED_RE.match(block.get("speed", ""))
        speed = float(speed_match.group(1)) if speed_match else None
        try:
            fps = float(block.get("fps", ""))
        except ValueError:
            fps = None
        eta = round((self.total - min(done, self.total)) / speed) if speed else None
        stats = {"fps": fps, "speed": speed, "eta_seconds": eta, "out_seconds": round(min(done, self.total), 2),
                 "total_seconds": round(self.total, 2)}
        # Hold back the last percent for moving the file into place and recording it.
        percent = self.start + self.span * fraction * 0.99
        self.ctx.progress(percent, stage=self.stage, code="ffmpeg_progress",
                          params={"done": stats["out_seconds"], "total": stats["total_seconds"]}, stats=stats)


def run_ffmpeg(ctx, args, *, total_seconds, stage="encoding", start_percent=0.0, span=100.0, cwd=None):
    """Run ffmpeg with the given arguments (inputs, filters, output); raise TaskError on failure
    with the last meaningful lines of its log."""
    parser = ProgressParser(ctx, total_seconds, stage, start_percent, span)
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-progress", "pipe:1", "-nostats",
            *args]
    run = ctx.run(argv, on_stdout=parser.feed, tail_lines=60, cwd=cwd)
    if run.returncode != 0:
        if NO_SPACE in run.stderr_tail:  # not ffmpeg's fault: say what the user can understand
            raise TaskError("disk_full", detail=meaningful_log(run.stderr_tail))
        raise TaskError("ffmpeg_failed", {"exit_code": run.returncode}, detail=meaningful_log(run.stderr_tail))


def meaningful_log(text, count=12):
    """The last distinct non-empty lines of ffmpeg's log, its files named from the task's folder
    (the user sees this detail; where the server keeps files is none of their business)."""
    from django.conf import settings

    text = text.replace(str(Path(settings.MEDIA_ROOT).resolve()) + "/", "").replace(str(settings.MEDIA_ROOT) + "/", "")
    lines, seen = [], set()
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and line not in seen:
            seen.add(line)
            lines.append(line)
        if len(lines) == count:
            break
    return "\n".join(reversed(lines))


def audio_args(media):
    """Copy audio MP4 can hold; re-encode anything else to AAC; none when there is none."""
    if not media.get("has_audio"):
        return ["-an"], "none"
    if media.get("acodec") in MP4_AUDIO:
        return ["-c:a", "copy"], "copied"
    return ["-c:a", "aac", "-b:a", "192k"], "re-encoded"


def output_name(original, suffix):
    stem = original.rsplit(".", 1)[0] if "." in original else original
    return f"{stem}{suffix}.mp4"
