"""Real videos for the tests, made by ffmpeg, and decoding helpers to check results."""

import subprocess
from pathlib import Path

from storage.media import ffmpeg_exe, probe

LOGO = {"x": 20, "y": 20, "w": 60, "h": 30}


def make_video(path, *, size="320x240", rate=25, seconds=3, audio=True, logo=True, source="testsrc2",
               audio_rate=44100, extra=()):
    """testsrc2 with a solid red box as the "logo" and a sine tone."""
    args = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={audio_rate}:duration={seconds}"]
    if logo:
        args += ["-vf", f"drawbox=x={LOGO['x']}:y={LOGO['y']}:w={LOGO['w']}:h={LOGO['h']}:color=red@1:t=fill"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra]
    if audio:
        args += ["-c:a", "aac", "-shortest"]
    args.append(str(path))
    subprocess.run(args, check=True, timeout=120)
    return Path(path)


def frame_rgb(path, second, width, height):
    """The frame at `second` as raw RGB bytes."""
    run = subprocess.run([ffmpeg_exe(), "-v", "error", "-ss", str(second), "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True, timeout=60)
    assert len(run.stdout) == width * height * 3
    return run.stdout


def region_mean_diff(a, b, width, rect):
    """Mean absolute difference of two RGB frames inside a rectangle."""
    total = count = 0
    for y in range(rect["y"], rect["y"] + rect["h"]):
        start = (y * width + rect["x"]) * 3
        end = start + rect["w"] * 3
        total += sum(abs(p - q) for p, q in zip(a[start:end], b[start:end]))
        count += end - start
    return total / count


def redness(frame, width, rect):
    """Mean of (R - (G+B)/2) inside a rectangle: high where the red logo is."""
    values = []
    for y in range(rect["y"], rect["y"] + rect["h"]):
        for x in range(rect["x"], rect["x"] + rect["w"]):
            i = (y * width + x) * 3
            values.append(frame[i] - (frame[i + 1] + frame[i + 2]) / 2)
    return sum(values) / len(values)


def info(path):
    return probe(path)
