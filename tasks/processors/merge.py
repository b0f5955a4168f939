"""`merge`: join 2..50 videos in the user's order. Stream copy with the concat demuxer when
all inputs match; otherwise re-encode with the concat filter to a common size, frame rate and
audio layout (inputs without audio get silence). The result says which path and why."""

import math
import re

from django.utils.translation import gettext as _

from tasks.errors import InvalidParams, TaskError
from tasks.models import TaskKind
from tasks.processors import Processor

MIN_INPUTS, MAX_INPUTS = 2, 50
# Joined by stream copy, the output keeps one set of codec parameters: a different profile (e.g.
# Baseline + High) decodes in ffmpeg but glitches in browsers, so it needs a re-encode too.
MATCH_KEYS = ("vcodec", "vprofile", "width", "height", "fps", "pix_fmt", "has_audio", "acodec", "sample_rate",
              "channels")
COPYABLE_VIDEO = {"h264", "hevc"}
COPYABLE_AUDIO = {"aac", "mp3", None}
SIZE_RE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


def copy_blockers(medias):
    """Why stream copy is impossible (empty when it is possible)."""
    reasons = []
    first = medias[0]
    for key in MATCH_KEYS:
        values = [m.get(key) for m in medias]
        if any(v != values[0] for v in values):
            shown = ", ".join(str(v) for v in dict.fromkeys(values))
            reasons.append(f"{key} differs ({shown})")
    if first.get("vcodec") not in COPYABLE_VIDEO:
        reasons.append(f"video codec {first.get('vcodec')} cannot be copied into MP4")
    if first.get("has_audio") and first.get("acodec") not in COPYABLE_AUDIO:
        reasons.append(f"audio codec {first.get('acodec')} cannot be copied into MP4")
    if any(m.get("rotation") for m in medias):
        reasons.append("rotated input")
    return reasons


def describe(media):
    """What the inputs share, for a result that says why they could be copied."""
    video = " ".join(str(v) for v in (media.get("vcodec"), media.get("vprofile") and f"({media['vprofile']})",
                                      f"{media.get('width')}x{media.get('height')}",
                                      media.get("fps") and f"{media['fps']:g} fps", media.get("pix_fmt")) if v)
    if not media.get("has_audio"):
        return f"{video}, no audio"
    audio = " ".join(str(v) for v in (media.get("acodec"), media.get("sample_rate") and f"{media['sample_rate']} Hz",
                                      media.get("channels") and f"{media['channels']} ch") if v)
    return f"{video}, {audio}"


def even(n):
    return max(2, int(n) // 2 * 2)


def concat_list_line(path):
    return "file '" + str(path).replace("'", "'\\''") + "'\n"


class MergeProcessor(Processor):
    kind = TaskKind.MERGE
    accepts_files = True
    default_timeout = 6 * 3600

    def validate(self, *, params, files, user):
        from storage.selectors import inputs_for_submit

        videos = inputs_for_submit(user=user, files=files, params=params, minimum=MIN_INPUTS, maximum=MAX_INPUTS)
        unknown = sorted(set(params) - {"files", "size", "fps", "mode"})
        if unknown:
            raise InvalidParams(_("Unknown parameter: %(name)s.") % {"name": str(unknown[0])[:60]}, str(unknown[0])[:60])
        size = params.get("size") or None
        if size is not None:
            match = SIZE_RE.match(str(size)) if isinstance(size, str) else None
            if not match or not (16 <= int(match.group(1)) <= 7680 and 16 <= int(match.group(2)) <= 4320):
                raise InvalidParams(_("size must look like 1280x720 (16 to 7680 by 16 to 4320)."), "size")
            size = f"{even(match.group(1))}x{even(match.group(2))}"
        fps = params.get("fps") or None
        if fps is not None:
            try:
                fps = float(fps)
            except (TypeError, ValueError):
                fps = -1
            if isinstance(params.get("fps"), bool) or not math.isfinite(fps) or not 1 <= fps <= 120:
                raise InvalidParams(_("fps must be a number from 1 to 120."), "fps")
        mode = params.get("mode", "auto")
        if mode not in ("auto", "reencode"):
            raise InvalidParams(_("mode must be auto or reencode."), "mode")
        return {"files": [str(v.pk) for v in videos], "size": size, "fps": fps, "mode": mode}

    def form_class(self, user):
        from tasks.video_forms import MergeForm

        return MergeForm

    def make_title(self, params):
        from storage.models import StoredFile

        # In no language: the title is stored, and read in whatever language the viewer has.
        first = StoredFile.objects.filter(pk=params["files"][0]).first()
        return f"{first.original_name} (+{len(params['files']) - 1})" if first else ""

    def default_timeout_for(self, params):
        from storage.models import StoredFile

        total = sum((f.media.get("duration") or 600) for f in StoredFile.objects.filter(pk__in=params["files"]))
        return int(max(600, total * 20))

    def run(self, ctx):
        from tasks.ffmpeg import output_name, run_ffmpeg

        files = ctx.input_files
        if len(files) != len(ctx.params["files"]) or not all(p.exists() for p in ctx.input_paths):
            raise TaskError("input_missing")
        medias = [f.media for f in files]
        total = sum(m.get("duration") or 0 for m in medias)
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        ctx.progress(0, stage="checking", code="checking_inputs")
        reasons = copy_blockers(medias)
        if ctx.params["size"]:
            reasons.append(f"size {ctx.params['size']} chosen")
        if ctx.params["fps"]:
            reasons.append(f"frame rate {ctx.params['fps']:g} chosen")
        if ctx.params["mode"] == "reencode":
            reasons.append("re-encoding asked for")
        part = ctx.output_dir / "output.mp4.part"
        if not reasons:
            listing = ctx.output_dir / "inputs.txt"
            listing.write_text("".join(concat_list_line(p) for p in ctx.input_paths), encoding="utf-8")
            run_ffmpeg(ctx, ["-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0", "-c", "copy",
                             "-movflags", "+faststart", "-f", "mp4", str(part)], total_seconds=total, stage="joining")
            listing.unlink(missing_ok=True)
            mode = "copy"
            width, height, fps = medias[0]["width"], medias[0]["height"], medias[0].get("fps")
        else:
            width, height, fps = self._target(ctx.params, medias)
            run_ffmpeg(ctx, self._reencode_args(ctx.input_paths, medias, width, height, fps, part),
                       total_seconds=total, stage="encoding")
            mode = "reencode"
        ctx.progress(99.5, stage="finishing", code="finishing")
        name = output_name(files[0].original_name, "-merged")
        final = ctx.output_dir / name
        part.replace(final)
        stored = ctx.add_output(final, name)
        if mode == "copy":
            why = f"all {len(files)} inputs match ({describe(medias[0])}): joined without re-encoding"
        else:
            why = "re-encoded: " + "; ".join(reasons)
        return {"output": name, "mode": mode, "reasons": reasons, "why": why, "inputs": len(files),
                "size": f"{width}x{height}", "fps": fps, "duration": stored.media.get("duration")}

    @staticmethod
    def _target(params, medias):
        if params["size"]:
            width, height = (int(n) for n in params["size"].split("x"))
        else:
            width, height = even(medias[0]["width"]), even(medias[0]["height"])
        fps = params["fps"] or medias[0].get("fps") or 25
        return width, height, round(float(fps), 3)

    @staticmethod
    def _reencode_args(paths, medias, width, height, fps, part):
        """Scale and pad each input to the target, common fps and pixel format; audio to 48 kHz
        stereo, with silence of the input's length for inputs that have none."""
        any_audio = any(m.get("has_audio") for m in medias)
        args, chains, pads = [], [], []
        for path in paths:
            args += ["-i", str(path)]
        silence = len(paths)
        for i, media in enumerate(medias):
            chains.append(
                f"[{i}:v:0]scale={width}:{height}:force_original_aspect_ratio=decrease,"
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p[v{i}]"
            )
            if any_audio:
                if media.get("has_audio"):
                    chains.append(f"[{i}:a:0]aformat=sample_rates=48000:channel_layouts=stereo[a{i}]")
                else:
                    args += ["-f", "lavfi", "-t", f"{media.get('duration') or 1:.3f}",
                             "-i", "anullsrc=channel_layout=stereo:sample_rate=48000"]
                    chains.append(f"[{silence}:a:0]anull[a{i}]")
                    silence += 1
                pads.append(f"[v{i}][a{i}]")
            else:
                pads.append(f"[v{i}]")
        chains.append(f"{''.join(pads)}concat=n={len(medias)}:v=1:a={1 if any_audio else 0}[v]{'[a]' if any_audio else ''}")
        args += ["-filter_complex", ";".join(chains), "-map", "[v]"]
        if any_audio:
            args += ["-map", "[a]", "-c:a", "aac", "-b:a", "192k"]
        args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-movflags", "+faststart", "-f", "mp4",
                 str(part)]
        return args


PROCESSOR = MergeProcessor()
