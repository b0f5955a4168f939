"""Video kinds against raw ffmpeg in the same run: a watermark task's wall time (submit to
completed, through a real worker) vs the same ffmpeg command run directly, and a compatible
merge vs ffmpeg's concat demuxer copy. Aim: overhead within 5% plus 0.5 s."""

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Stack, median, wait_task  # noqa: E402

RUNS = 3


def main():
    with Stack(workers=1) as stack:
        from django.core.files.uploadedfile import SimpleUploadedFile

        from storage.media import ffmpeg_exe
        from storage.services import file_store_upload
        from tasks import services
        from tests.media_helpers import LOGO, make_video

        user = stack.operator()
        src = stack.var / "src"
        src.mkdir()
        clip = make_video(src / "clip.mp4", size="1280x720", rate=30, seconds=20)
        part = make_video(src / "part.mp4", size="1280x720", rate=30, seconds=10, logo=False)

        def stored(path):
            return file_store_upload(owner=user, upload=SimpleUploadedFile(path.name, path.read_bytes()))

        rows = []
        # Watermark: task vs the same command.
        task_times, raw_times = [], []
        for _ in range(RUNS):
            video = stored(clip)
            started = time.monotonic()
            task = services.task_submit(owner=user, kind="watermark", params={"rects": [LOGO]}, files=[video])
            task = wait_task(task.pk)
            task_times.append(time.monotonic() - started)
            assert task.status == "completed", (task.error_code, task.error_detail)
            out = stack.var / "raw.mp4"
            vf = f"delogo=x={LOGO['x']}:y={LOGO['y']}:w={LOGO['w']}:h={LOGO['h']}"
            started = time.monotonic()
            subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(clip),
                            "-map", "0:v:0", "-map", "0:a:0?", "-vf", vf, "-c:v", "libx264", "-preset", "veryfast",
                            "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "copy", "-movflags", "+faststart",
                            str(out)], check=True)
            raw_times.append(time.monotonic() - started)
        rows.append(("watermark 1280x720, 20 s", median(task_times), median(raw_times)))
        # Merge, stream copy path: task vs concat demuxer copy.
        task_times, raw_times = [], []
        for _ in range(RUNS):
            inputs = [stored(part), stored(part), stored(part)]
            started = time.monotonic()
            task = services.task_submit(owner=user, kind="merge", params={}, files=inputs)
            task = wait_task(task.pk)
            task_times.append(time.monotonic() - started)
            assert task.status == "completed" and task.result["mode"] == "copy", task.result
            listing = stack.var / "list.txt"
            listing.write_text("".join(f"file '{part}'\n" for _ in range(3)))
            started = time.monotonic()
            subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-f", "concat",
                            "-safe", "0", "-i", str(listing), "-map", "0", "-c", "copy", "-movflags", "+faststart",
                            str(stack.var / "merged.mp4")], check=True)
            raw_times.append(time.monotonic() - started)
        rows.append(("merge copy, 3 × 10 s 1280x720", median(task_times), median(raw_times)))

    print("## video\n")
    print(f"Median of {RUNS} runs. Task time is submit → completed through a real RQ worker (includes dispatch,")
    print("the fork, progress reporting, probing and recording the output); raw is the same ffmpeg command.\n")
    print("| case | task (s) | raw ffmpeg (s) | ratio | overhead (s) | within 5% + 0.5 s |")
    print("|---|---|---|---|---|---|")
    for name, task_s, raw_s in rows:
        ok = task_s <= raw_s * 1.05 + 0.5
        print(f"| {name} | {task_s:.2f} | {raw_s:.2f} | {task_s / raw_s:.2f}× | {task_s - raw_s:+.2f} | {'yes' if ok else 'NO'} |")


if __name__ == "__main__":
    main()
