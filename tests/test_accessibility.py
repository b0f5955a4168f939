"""Every page checked by axe-core (Deque's accessibility engine, the one browser audits use) in a
real Chromium against WCAG 2.1 A and AA, in the states people see: the forms (a copy's too), the
task list with tasks in every state, a running and a failed task, a finished watermark task with
its comparison, the account page with a token, the 404 page; in English and Chinese, at desktop
and phone widths, in light and dark colours. axe-core comes from npm (.ci/run installs it into
.cache/axe); without it these tests are skipped, loudly."""

from pathlib import Path

import pytest

from tasks.models import Task
from tests.browser import *  # noqa: F401,F403
from tests.browser import DESKTOP, PHONE
from tests.conftest import wait_for
from tests.media_helpers import LOGO, make_video

AXE = Path(__file__).resolve().parent.parent / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
S = Task.Status

pytestmark = pytest.mark.skipif(
    not AXE.exists(), reason=f"ACCESSIBILITY TESTS SKIPPED: no axe-core at {AXE}. Install it with "
                             "`npm install --prefix .cache/axe axe-core@4.14.1` (.ci/run does).")


def violations(page):
    """axe's WCAG 2.1 A/AA violations on the page as it is now: [(rule, impact, [elements])]."""
    if not page.evaluate("() => Boolean(window.axe)"):
        page.add_script_tag(path=str(AXE))  # the page's CSP is bypassed in these tests' contexts
    found = page.evaluate("async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
                          ".violations.map((v) => [v.id, v.impact, v.nodes.map((n) => n.target.join(' '))])", WCAG)
    return [tuple(v) for v in found]


def api_post(page, path, body):
    return page.evaluate("""async ([path, body]) => {
        const token = document.cookie.split("; ").find((c) => c.startsWith("csrftoken=")).split("=")[1];
        const response = await fetch(path, {method: "POST", body: JSON.stringify(body), credentials: "same-origin",
            headers: {"Content-Type": "application/json", "X-CSRFToken": token}});
        return response.json();
    }""", [path, body])


@pytest.fixture
def visited(server, workers, new_page, tmp_path):
    """A visitor's pages in every state worth seeing: {name: path}."""
    from tasks.models import CommandTemplate
    from tests.conftest import FAKE_TOOL

    CommandTemplate.objects.update_or_create(name="steps", defaults=dict(
        description="Reports progress step by step.", allow_everyone=True, default_timeout=300,
        argv=["{python}", FAKE_TOOL, "--steps", "{steps}", "--sleep", "{sleep}", ["--exit", "{exit}"]],
        param_schema=[{"name": "steps", "type": "integer", "default": 1, "min": 1, "max": 10000},
                      {"name": "sleep", "type": "number", "default": 0, "min": 0, "max": 5},
                      {"name": "exit", "type": "integer"}]))
    workers(1)
    page = new_page(bypass_csp=True)
    page.goto(f"{server.url}/tasks/")

    def submit(title, **args):
        body = {"kind": "command", "title": title, "params": {"template": "steps", "args": args}}
        return api_post(page, "/api/tasks/", body)["task_id"]

    done = submit("Done")
    failed = submit("Broken", exit=3)
    wait_for(lambda: Task.objects.get(pk=failed).status == S.FAILED, 60, message="the failing task")
    # The watermark's video goes up through the form, as people send it.
    clip = make_video(tmp_path / "clip.mp4", size="640x360", seconds=2)
    page.goto(f"{server.url}/new/watermark/")
    page.locator("input[type=file][data-boxes-source]").set_input_files(str(clip))
    wait_for(lambda: page.locator("[data-staged]").input_value(), 30, message="the staged upload")
    page.locator("textarea[data-boxes]").fill(f"{LOGO['x']}, {LOGO['y']}, {LOGO['w']}, {LOGO['h']}")
    page.get_by_role("button", name="Start task").click()
    page.wait_for_url("**/tasks/*/**")
    watermark = page.url.split("/tasks/")[1].split("/")[0]
    wait_for(lambda: Task.objects.get(pk=watermark).status == S.COMPLETED, 60, message="the watermark task")
    running = submit("Long one", steps=600, sleep=0.2)
    waiting = submit("Waits its turn")
    wait_for(lambda: Task.objects.get(pk=running).status == S.RUNNING, 30, message="the long task")
    assert Task.objects.get(pk=done).status == S.COMPLETED and Task.objects.get(pk=waiting).status == S.PENDING
    page.goto(f"{server.url}/account/")
    page.locator(".token-form input[type=text]").first.fill("laptop")
    page.get_by_role("button", name="Create a token").click()
    page.locator(".token-once").wait_for()
    yield page, {
        "new task": "/", "watermark form": "/new/watermark/", "merge form": "/new/merge/",
        "download form": "/new/download/", "copy of the watermark": f"/new/watermark/?from={watermark}",
        "task list": "/tasks/", "searched list": "/tasks/?q=nothing+like+it", "running task": f"/tasks/{running}/",
        "failed task": f"/tasks/{failed}/", "waiting task": f"/tasks/{waiting}/",
        "finished watermark": f"/tasks/{watermark}/", "account": "/account/", "not found": "/no/such/page/",
    }


def audit(page, server, pages, ready=None):
    found = {}
    for name, path in pages.items():
        page.goto(f"{server.url}{path}")
        if ready:
            ready(page, path)
        page.wait_for_timeout(300)  # live updates and relative times settled
        if problems := violations(page):
            found[name] = problems
    return found


def settled(page, path):
    if "/tasks/" in path and path.count("/") == 3:
        page.locator('[data-live-indicator][data-state="live"]').wait_for(timeout=10000)
    if page.locator("[data-compare]:not([hidden])").count():
        page.wait_for_function("() => [...document.querySelectorAll('[data-compare] img')].every("
                               "(i) => i.complete && i.naturalWidth > 0)")
    if "?from=" in path:  # the copied video's frame, with the box and its remove button on it
        page.locator("[data-box]").first.wait_for()


def with_dialog_open(page, server):
    """The confirmation dialog, over the task list."""
    page.goto(f"{server.url}/tasks/")
    page.locator("[data-bulk] button, form[data-confirm] button").first.click()
    page.locator("[data-confirm-dialog][open]").wait_for()
    return violations(page)


def test_every_page_meets_wcag_aa_in_english_on_a_desktop_and_in_chinese_on_a_phone_in_dark_colours(
        server, visited):
    page, pages = visited
    page.allowed_errors = ["404"]
    found = {}
    for setting, (viewport, scheme, language) in {"English, desktop, light": (DESKTOP, "light", "EN"),
                                                  "中文, phone, dark": (PHONE, "dark", "中文")}.items():
        page.set_viewport_size(viewport)
        page.emulate_media(color_scheme=scheme)
        page.goto(f"{server.url}/tasks/")
        page.locator(".topbar").get_by_role("button", name=language).click()
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang").startswith("zh" if language == "中文" else "en")
        found.update({f"{setting}: {name}": problems for name, problems in audit(page, server, pages, settled).items()})
        if dialog := with_dialog_open(page, server):
            found[f"{setting}: confirmation dialog"] = dialog
    assert found == {}, "\n".join(f"{name}: {problems}" for name, problems in found.items())
