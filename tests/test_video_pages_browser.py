"""The video forms in a real Chromium: the watermark video is staged as soon as it is chosen, a
frame of it is shown, boxes are drawn, moved and removed on it and kept in step with the numbers;
the merge form's files are put in order before they are sent. Real daphne, workers and ffmpeg."""

import re

import pytest

from storage.models import StoredFile
from tasks.models import Task
from tests.browser import *  # noqa: F401,F403
from tests.conftest import wait_for
from tests.media_helpers import LOGO, make_video


@pytest.fixture
def clip(tmp_path):
    # A blue logo, on testsrc2's red bar: what fills the box after removal is red, never blue.
    logo = f"drawbox=x={LOGO['x']}:y={LOGO['y']}:w={LOGO['w']}:h={LOGO['h']}:color=blue@1:t=fill"
    return make_video(tmp_path / "带台标 clip.mp4", size="640x360", seconds=3, logo=False, extra=("-vf", logo))


def frame_box(page):
    return page.locator("[data-boxes-layer]").bounding_box()


def drag(page, start, end):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=3)
    page.mouse.move(*end, steps=3)
    page.mouse.up()


def to_screen(layer, x, y, size=(640, 360)):
    return layer["x"] + x * layer["width"] / size[0], layer["y"] + y * layer["height"] / size[1]


def boxes_text(page):
    return page.locator("textarea[data-boxes]").input_value().strip()


def parse(text):
    return [tuple(int(v) for v in line.split(",")) for line in text.splitlines() if line.strip()]


def frames_shown(page):
    page.wait_for_function("() => [...document.querySelectorAll('[data-compare] img')].length === 2 &&"
                           " [...document.querySelectorAll('[data-compare] img')].every("
                           "  (i) => i.complete && i.naturalWidth > 0 && !i.closest('[hidden]'))"
                           " && !document.querySelector('.compare__stage').classList.contains('is-loading')")


def pixel(page, which, x, y, size=(640, 360)):
    """The colour at (x, y), in the video's pixels: of a frame ("before", "after"), or as the page
    shows it ("shown": a screenshot of the stage, divider and all)."""
    if which == "shown":
        stage = page.locator(".compare__stage")
        box = stage.bounding_box()
        return png_pixel(stage.screenshot(animations="disabled"), x * box["width"] / size[0], y * box["height"] / size[1])
    return page.evaluate("""([side, fx, fy]) => {
        const frame = document.querySelector(`[data-compare-${side}]`), canvas = document.createElement("canvas");
        canvas.width = frame.naturalWidth; canvas.height = frame.naturalHeight;
        const g = canvas.getContext("2d");
        g.drawImage(frame, 0, 0);
        return [...g.getImageData(Math.round(fx * frame.naturalWidth), Math.round(fy * frame.naturalHeight), 1, 1).data];
    }""", [which, x / size[0], y / size[1]])


def png_pixel(data, x, y):
    """(r, g, b) at (x, y) of an 8-bit RGB or RGBA PNG, as Chromium's screenshots are."""
    import struct
    import zlib

    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    chunks, pos = b"", 8
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        if kind == b"IDAT":
            chunks += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw, step = zlib.decompress(chunks), 3 if colour == 2 else 4
    stride, previous, row = width * step, bytearray(width * step), None
    for line in range(int(y) + 1):
        kind, scan = raw[line * (stride + 1)], bytearray(raw[line * (stride + 1) + 1:(line + 1) * (stride + 1)])
        for i in range(stride):
            a = scan[i - step] if i >= step else 0
            b, c = previous[i], previous[i - step] if i >= step else 0
            if kind == 1:
                scan[i] = (scan[i] + a) & 255
            elif kind == 2:
                scan[i] = (scan[i] + b) & 255
            elif kind == 3:
                scan[i] = (scan[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                scan[i] = (scan[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        previous = row = scan
    return tuple(row[int(x) * step:int(x) * step + 3])


def is_blue(rgba):
    return rgba[2] > 180 and rgba[0] < 80 and rgba[1] < 80


def start_and_finish(page):
    """Start the form's task; the task once it completed."""
    page.get_by_role("button", name="Start task").click()
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}/\?created=1$"))
    task_id = page.url.split("/tasks/")[1].split("/")[0]
    task = wait_for(lambda: (t := Task.objects.get(pk=task_id)).status in Task.TERMINAL and t, 60,
                    message="the watermark task to finish")
    assert task.status == Task.Status.COMPLETED, (task.error_code, task.error_detail)
    return task


def test_it_draws_the_boxes_on_a_frame_of_the_staged_video(server, workers, new_page, clip):
    workers(1)
    page = new_page()
    page.goto(f"{server.url}/new/watermark/")
    page.locator("input[type=file][data-boxes-source]").set_input_files(str(clip))

    # The video is uploaded at once and a frame of it shown, with its real size.
    wait_for(lambda: page.locator("[data-staged]").input_value(), 30, message="the staged upload")
    staged = StoredFile.objects.get(pk=page.locator("[data-staged]").input_value())
    assert staged.task_id is None and staged.original_name == clip.name
    page.wait_for_function("() => { const i = document.querySelector('.boxes__frame');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    assert "640×360" in page.locator(".boxes__info").inner_text()

    # Draw around the logo: the numbers follow, in the video's pixels.
    layer = frame_box(page)
    drag(page, to_screen(layer, LOGO["x"], LOGO["y"]),
         to_screen(layer, LOGO["x"] + LOGO["w"], LOGO["y"] + LOGO["h"]))
    (box,) = parse(boxes_text(page))
    for got, want in zip(box, (LOGO["x"], LOGO["y"], LOGO["w"], LOGO["h"])):
        assert abs(got - want) <= 3, (box, LOGO)
    assert page.locator("[data-box]").count() == 1

    # A second box, then moved by dragging it; then removed with its button.
    drag(page, to_screen(layer, 400, 200), to_screen(layer, 480, 260))
    assert len(parse(boxes_text(page))) == 2
    second = parse(boxes_text(page))[1]
    drag(page, to_screen(layer, 440, 230), to_screen(layer, 340, 130))
    moved = parse(boxes_text(page))[1]
    assert abs((second[0] - moved[0]) - 100) <= 3 and abs((second[1] - moved[1]) - 100) <= 3
    assert moved[2:] == second[2:]
    page.get_by_role("button", name="Remove box 2").click()
    assert len(parse(boxes_text(page))) == 1

    # Typing numbers redraws the boxes.
    page.locator("textarea[data-boxes]").fill(f"{LOGO['x']}, {LOGO['y']}, {LOGO['w']}, {LOGO['h']}\n300, 100, 50, 40")
    assert page.locator("[data-box]").count() == 2
    page.locator("textarea[data-boxes]").fill(f"{LOGO['x']}, {LOGO['y']}, {LOGO['w']}, {LOGO['h']}")
    assert page.locator("[data-box]").count() == 1

    # Another frame; its time becomes the start.
    page.locator("[data-boxes-time]").fill("2")
    page.get_by_role("button", name="Use as start").click()
    assert page.get_by_label("From second").input_value() == "2.0"
    page.get_by_label("From second").fill("")

    task = start_and_finish(page)
    assert task.params["files"] == [str(staged.pk)]  # the staged upload, not a second copy
    assert task.params["rects"] == [LOGO]
    assert StoredFile.objects.filter(owner=staged.owner, role=StoredFile.Role.INPUT).count() == 1

    # Its page compares the original with the result at the same second: the logo is gone.
    page.goto(f"{server.url}/tasks/{task.pk}/")
    frames_shown(page)
    (result,) = task.files.filter(role=StoredFile.Role.OUTPUT)
    before, after = (page.locator(f"[data-compare-{side}]").get_attribute("data-frame") for side in ("before", "after"))
    assert before.startswith(f"/api/files/{staged.pk}/preview/?t=1&") and after.startswith(f"/api/files/{result.pk}/preview/?t=1&")
    assert page.locator("[data-compare-box]").count() == 1
    logo = (LOGO["x"] + LOGO["w"] / 2, LOGO["y"] + LOGO["h"] / 2)
    assert is_blue(pixel(page, "before", *logo)) and not is_blue(pixel(page, "after", *logo))
    assert is_blue(pixel(page, "shown", *logo))  # the divider in the middle: the logo's side is the original
    page.locator("[data-compare-split]").fill("0")
    assert not is_blue(pixel(page, "shown", *logo))
    page.locator("[data-compare-time]").fill("2")
    page.wait_for_function("() => (document.querySelector('[data-compare-after]').dataset.frame || '').includes('?t=2&')")
    frames_shown(page)

    # Copy it: the same frame comes back with the box on it, to move and run again, no upload.
    page.locator("[data-copy-task]").click()
    page.wait_for_function("() => { const i = document.querySelector('.boxes__frame');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    assert f"/api/files/{staged.pk}/preview/" in page.locator(".boxes__frame").get_attribute("data-frame")
    assert clip.name in page.locator(".boxes__status").inner_text()
    assert page.locator("[data-box]").count() == 1
    layer = frame_box(page)
    drag(page, to_screen(layer, LOGO["x"] + LOGO["w"] / 2, LOGO["y"] + LOGO["h"] / 2),
         to_screen(layer, LOGO["x"] + LOGO["w"] / 2 + 100, LOGO["y"] + LOGO["h"] / 2))
    (moved,) = parse(boxes_text(page))
    assert abs(moved[0] - LOGO["x"] - 100) <= 3 and moved[1:] == (LOGO["y"], LOGO["w"], LOGO["h"])
    copy = start_and_finish(page)
    assert copy.params["rects"] == [dict(zip("xywh", moved))]
    frames_shown(page)  # the copy's page, open while it ran: its comparison appeared as it completed
    (reused,) = StoredFile.objects.filter(task=copy, role=StoredFile.Role.INPUT)
    assert reused.pk != staged.pk and reused.sha256 == StoredFile.objects.get(pk=staged.pk).sha256


def stage(page, server, clip):
    page.goto(f"{server.url}/new/watermark/")
    page.locator("input[type=file][data-boxes-source]").set_input_files(str(clip))
    staged = wait_for(lambda: page.locator("[data-staged]").input_value(), 30, message="the staged upload")
    return StoredFile.objects.get(pk=staged)


def frame_at(page, second):
    page.locator("[data-boxes-time]").fill(str(second))
    page.wait_for_function("(t) => { const i = document.querySelector('.boxes__frame');"
                           " return i.complete && i.naturalWidth > 0 && (i.dataset.frame || '').includes(`?t=${t}&`); }",
                           arg=str(second))


def test_a_busy_server_is_waited_out_and_its_frame_shown(server, transactional_db, redis_conn, new_page, clip):
    """Every preview slot taken (a 503 with Retry-After) is a moment's state of a loaded server that
    no test can hold still: the browser's router answers one frame request as the server then
    does (test_files_api checks that answer); the page asks again, and the real server answers."""
    import json

    page = new_page()
    page.allowed_errors = ["503"]
    asked = []
    page.on("request", lambda request: "/preview/" in request.url and asked.append(request.url))
    staged = stage(page, server, clip)
    frame_at(page, 1)

    refused = []

    def busy_once(route):
        if refused or "?t=2&" not in route.request.url:  # the first frame may still be asked for again
            return route.continue_()
        refused.append(route.request.url)
        route.fulfill(status=503, headers={"Retry-After": "1"}, content_type="application/json", body=json.dumps(
            {"error": {"code": "preview_busy",
                       "message": "The server is busy making other previews; try again in a moment."}}))

    page.route("**/preview/**", busy_once)
    before, status = len(asked), page.locator(".boxes__status").inner_text()
    page.locator("[data-boxes-time]").fill("2")
    note = page.locator("[data-frame-note]")
    wait_for(lambda: "asking again in 1 s" in note.inner_text(), 10, message="the wait to be told")
    assert page.locator(".boxes__status").inner_text() == status  # the upload's news stays
    frame_at(page, 2)
    assert [url for url in asked[before:] if "?t=2&" in url] == refused * 2  # asked twice, shown once
    assert f"/api/files/{staged.pk}/preview/?t=2&" in page.locator(".boxes__frame").get_attribute("data-frame")
    wait_for(lambda: note.is_hidden(), 5, message="the wait's notice to go")


def test_a_refused_frame_says_why(server, transactional_db, redis_conn, new_page, clip):
    page = new_page()
    page.allowed_errors = ["410"]
    staged = stage(page, server, clip)
    frame_at(page, 1)
    staged.abs_path.unlink()  # gone from disk behind the server's back
    page.locator("[data-boxes-time]").fill("2")
    note = page.locator("[data-frame-note]")
    wait_for(lambda: "no longer on the server" in note.inner_text(), 10, message="the refusal to be told")
    assert "You can still enter the boxes as numbers." in note.inner_text()
    assert "?t=1&" in page.locator(".boxes__frame").get_attribute("data-frame")  # the last frame stays


def test_it_replaces_the_staged_video_when_another_is_chosen(server, transactional_db, redis_conn, new_page,
                                                               clip, tmp_path):
    page = new_page()
    page.goto(f"{server.url}/new/watermark/")
    source = page.locator("input[type=file][data-boxes-source]")
    source.set_input_files(str(clip))
    first = wait_for(lambda: page.locator("[data-staged]").input_value(), 30, message="the first staged upload")
    other = make_video(tmp_path / "other.mp4", size="320x240", seconds=2, logo=False)
    source.set_input_files(str(other))
    second = wait_for(lambda: (v := page.locator("[data-staged]").input_value()) != first and v, 30,
                      message="the second staged upload")
    wait_for(lambda: not StoredFile.objects.filter(pk=first).exists(), 10, message="the first upload to be removed")
    assert StoredFile.objects.get(pk=second).media["width"] == 320
    assert "320×240" in page.locator(".boxes__info").inner_text()


def test_it_names_a_refused_video_on_its_field(server, transactional_db, redis_conn, new_page, tmp_path):
    junk = tmp_path / "notes.mp4"
    junk.write_bytes(b"this is not a video at all" * 100)
    page = new_page()
    page.allowed_errors = ["400"]  # the refused upload's response is logged by the browser
    page.goto(f"{server.url}/new/watermark/")
    page.locator("input[type=file][data-boxes-source]").set_input_files(str(junk))
    error = page.locator("[data-field-error]").first
    wait_for(lambda: error.is_visible(), 30, message="the upload error")
    assert "notes.mp4" in error.inner_text()
    assert page.locator("[data-boxes-panel]").is_hidden()
    assert not StoredFile.objects.exists()


def test_it_sends_the_merge_videos_in_the_order_chosen(server, workers, new_page, tmp_path):
    workers(1)
    first = make_video(tmp_path / "a-first.mp4", size="320x240", seconds=1, logo=False)
    second = make_video(tmp_path / "b-second.mp4", size="320x240", seconds=2, logo=False)
    page = new_page()
    page.goto(f"{server.url}/new/merge/")
    page.locator("input[type=file][data-orderable]").set_input_files([str(first), str(second)])
    items = page.locator("[data-file-order] li")
    assert [items.nth(i).locator(".order__name").inner_text() for i in range(2)] == ["a-first.mp4", "b-second.mp4"]
    page.get_by_role("button", name="Move a-first.mp4 down").click()
    assert [items.nth(i).locator(".order__name").inner_text() for i in range(2)] == ["b-second.mp4", "a-first.mp4"]
    page.get_by_role("button", name="Start task").click()
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}/"))
    task_id = page.url.split("/tasks/")[1].split("/")[0]
    inputs = StoredFile.objects.filter(task_id=task_id, role=StoredFile.Role.INPUT).order_by("position")
    assert [f.original_name for f in inputs] == ["b-second.mp4", "a-first.mp4"]

    # Copied, with nothing chosen: the same videos in the same order, sent by id, not uploaded again.
    page.goto(f"{server.url}/tasks/{task_id}/")
    page.locator("[data-copy-task]").click()
    assert "b-second.mp4, a-first.mp4" in page.locator(".field--file, .field").filter(
        has=page.locator("input[type=file]")).first.inner_text()
    with page.expect_request(lambda r: r.url.endswith("/api/tasks/") and r.method == "POST") as sent:
        page.get_by_role("button", name="Start task").click()
    assert b"filename=" not in (sent.value.post_data_buffer or b"")  # no file went up again
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}/\?created=1$"))
    copy_id = page.url.split("/tasks/")[1].split("/")[0]
    assert copy_id != task_id
    copied = StoredFile.objects.filter(task_id=copy_id, role=StoredFile.Role.INPUT).order_by("position")
    assert [f.original_name for f in copied] == ["b-second.mp4", "a-first.mp4"]
    assert [f.sha256 for f in copied] == [f.sha256 for f in inputs]
    assert not {f.pk for f in copied} & {f.pk for f in inputs}
