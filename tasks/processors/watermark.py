"""`watermark`: remove rectangular logos from a video with ffmpeg's delogo, or removelogo with
a mask drawn from the rectangles, optionally only between two times."""

import math

from django.utils.translation import gettext as _

from tasks.errors import InvalidParams, TaskError
from tasks.models import TaskKind
from tasks.processors import Processor

METHODS = ("delogo", "removelogo")
MAX_RECTS = 20


def _number(value, field, *, integer=False):
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidParams(_("%(field)s must be a number.") % {"field": field}, field)
    return int(round(value)) if integer else float(value)


def clean_rects(rects, width, height, edge):
    """Validate rectangles against the frame. delogo needs a 1-pixel border of real picture
    around each box, so boxes touching or crossing the edge are clamped (edge="clamp", noted)
    or refused (edge="refuse"); boxes wholly outside and empty boxes are always refused."""
    if not isinstance(rects, list) or not rects:
        raise InvalidParams(_("Draw at least one rectangle."), "rects")
    if len(rects) > MAX_RECTS:
        raise InvalidParams(_("At most %(n)s rectangles.") % {"n": MAX_RECTS}, "rects")
    frame = {"width": width, "height": height}
    cleaned, notes = [], []
    for i, rect in enumerate(rects):
        field = f"rects.{i}"
        if not isinstance(rect, dict) or set(rect) - {"x", "y", "w", "h"} or not {"x", "y", "w", "h"} <= set(rect):
            raise InvalidParams(_("Rectangle %(n)s needs exactly x, y, w and h.") % {"n": i + 1}, field)
        x, y, w, h = (_number(rect[k], f"{field}.{k}", integer=True) for k in ("x", "y", "w", "h"))
        if w <= 0 or h <= 0:
            raise InvalidParams(_("Rectangle %(n)s has a zero or negative size.") % {"n": i + 1}, field)
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise InvalidParams(_("Rectangle %(n)s lies outside the %(width)s×%(height)s frame.")
                                % {"n": i + 1, **frame}, field)
        x0, y0, x1, y1 = max(x, 1), max(y, 1), min(x + w, width - 1), min(y + h, height - 1)
        if (x0, y0, x1, y1) != (x, y, x + w, y + h):
            if edge == "refuse":
                raise InvalidParams(_("Rectangle %(n)s touches or crosses the edge of the %(width)s×%(height)s frame; "
                                      "keep it at least 1 pixel inside.") % {"n": i + 1, **frame}, field)
            if x1 - x0 < 1 or y1 - y0 < 1:
                raise InvalidParams(_("Rectangle %(n)s has nothing left inside the %(width)s×%(height)s frame.")
                                    % {"n": i + 1, **frame}, field)
            notes.append({"code": "rect_clamped", "rect": i + 1, "from": {"x": x, "y": y, "w": w, "h": h},
                          "to": {"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0}})
        cleaned.append({"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0})
    return cleaned, notes


def write_mask(path, width, height, rects):
    """A binary PGM: white where the logo is, black elsewhere (removelogo's input)."""
    rows = bytearray(width * height)
    for r in rects:
        for row in range(r["y"], r["y"] + r["h"]):
            rows[row * width + r["x"]: row * width + r["x"] + r["w"]] = b"\xff" * r["w"]
    with open(path, "wb") as f:
        f.write(f"P5\n{width} {height}\n255\n".encode() + bytes(rows))


class WatermarkProcessor(Processor):
    kind = TaskKind.WATERMARK
    accepts_files = True
    default_timeout = 6 * 3600

    def validate(self, *, params, files, user):
        from storage.selectors import inputs_for_submit

        (video,) = inputs_for_submit(user=user, files=files, params=params, minimum=1, maximum=1)
        media = video.media
        unknown = sorted(set(params) - {"files", "rects", "start", "end", "method", "edge"})
        if unknown:
            raise InvalidParams(_("Unknown parameter: %(name)s.") % {"name": str(unknown[0])[:60]}, str(unknown[0])[:60])
        method = params.get("method", "delogo")
        if method not in METHODS:
            raise InvalidParams(_("method must be delogo or removelogo."), "method")
        edge = params.get("edge", "clamp")
        if edge not in ("clamp", "refuse"):
            raise InvalidParams(_("edge must be clamp or refuse."), "edge")
        rects, notes = clean_rects(params.get("rects"), media["width"], media["height"], edge)
        duration = media.get("duration")
        start = params.get("start")
        end = params.get("end")
        start = None if start in (None, "") else _number(start, "start")
        end = None if end in (None, "") else _number(end, "end")
        if start is not None and (start < 0 or (duration and start >= duration)):
            raise InvalidParams(_("start must be between 0 and the video's length (%(duration)s s).")
                                % {"duration": duration}, "start")
        if end is not None and (end <= (start or 0) or end < 0):
            raise InvalidParams(_("end must be after start."), "end")
        return {"files": [str(video.pk)], "rects": rects, "start": start, "end": end, "method": method,
                "edge": edge, "notes": notes}

    def form_class(self, user):
        from tasks.video_forms import WatermarkForm

        return WatermarkForm

    def make_title(self, params):
        from storage.models import StoredFile

        video = StoredFile.objects.filter(pk=params["files"][0]).first()
        return video.original_name if video else ""

    def default_timeout_for(self, params):
        from storage.models import StoredFile

        video = StoredFile.objects.filter(pk=params["files"][0]).first()
        duration = (video.media.get("duration") if video else None) or 600
        return int(max(600, duration * 20))  # generous: a slow encode of a long video

    def run(self, ctx):
        from tasks.ffmpeg import audio_args, output_name, run_ffmpeg

        if not ctx.input_files or not ctx.input_paths[0].exists():
            raise TaskError("input_missing")
        video = ctx.input_files[0]
        media, params = video.media, ctx.params
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        enable = ""
        if params["start"] is not None or params["end"] is not None:
            start = params["start"] or 0
            end = params["end"] if params["end"] is not None else (media.get("duration") or 10**9)
            enable = f":enable='between(t,{start:.3f},{end:.3f})'"
        if params["method"] == "removelogo":
            mask = ctx.output_dir / "mask.pgm"
            write_mask(mask, media["width"], media["height"], params["rects"])
            vf = f"removelogo=f=mask.pgm{enable}"  # relative: ffmpeg runs in output_dir, no filter escaping
        else:
            vf = ",".join(f"delogo=x={r['x']}:y={r['y']}:w={r['w']}:h={r['h']}{enable}" for r in params["rects"])
        name = output_name(video.original_name, "-nologo")
        part = ctx.output_dir / "output.mp4.part"
        audio, audio_mode = audio_args(media)
        ctx.progress(0, stage="encoding", code="ffmpeg_progress", params={"done": 0, "total": media.get("duration")})
        run_ffmpeg(ctx, ["-i", str(ctx.input_paths[0]), "-map", "0:v:0", "-map", "0:a:0?", "-vf", vf,
                         "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                         *audio, "-movflags", "+faststart", "-f", "mp4", str(part)],
                   total_seconds=media.get("duration"), cwd=ctx.output_dir)
        ctx.progress(99.5, stage="finishing", code="finishing")
        final = ctx.output_dir / name
        part.replace(final)
        (ctx.output_dir / "mask.pgm").unlink(missing_ok=True)
        stored = ctx.add_output(final, name)
        return {"output": name, "method": params["method"], "rects": params["rects"], "notes": params["notes"],
                "audio": audio_mode, "duration": stored.media.get("duration"),
                "size": f"{stored.media.get('width')}x{stored.media.get('height')}"}


PROCESSOR = WatermarkProcessor()
