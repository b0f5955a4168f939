"""The `command` kind's validation: the template's parameter schema, argv rendering, no shell."""

import html
import json

import pytest
from django.core.exceptions import ValidationError

from tasks import services
from tasks.errors import ApiError, InvalidParams
from tasks.models import CommandTemplate, Task, validate_argv
from tasks.processors.command import PROCESSOR, check_schema, render_argv
from tests.conftest import wait_for


def validate(args, template="fake", user=None):
    return PROCESSOR.validate(params={"template": template, "args": args}, files=[], user=user)


@pytest.mark.parametrize(
    "args, field",
    [
        ({"steps": "many"}, "args.steps"),
        ({"steps": True}, "args.steps"),
        ({"steps": 10**20}, "args.steps"),
        ({"steps": -1}, "args.steps"),
        ({"sleep": "nan"}, "args.sleep"),
        ({"sleep": 61}, "args.sleep"),
        ({"child": "maybe"}, "args.child"),
        ({"write": "../../etc/passwd"}, "args.write"),
        ({"stderr": "a\x00b"}, "args.stderr"),
        ({"stderr": ["list"]}, "args.stderr"),
        ({"stderr": "x" * 10_001}, "args.stderr"),
        ({"bogus": 1}, "args.bogus"),
    ],
)
def test_it_refuses_bad_arguments_naming_the_field(tool, args, field):
    with pytest.raises(InvalidParams) as err:
        validate(args)
    assert err.value.field == field
    assert str(err.value.message)


def test_it_coerces_form_strings_to_the_declared_types(tool):
    cleaned = validate({"steps": "7", "sleep": "0.5", "child": "on", "write": "out.txt"})
    assert cleaned == {"template": "fake", "args": {"steps": 7, "sleep": 0.5, "child": True, "write": "out.txt"}}


def test_it_requires_required_parameters_and_fills_defaults(db):
    CommandTemplate.objects.create(
        name="gen", argv=["gen", "{topic}", "{count}"],
        param_schema=[{"name": "topic", "required": True, "choices": ["cats", "dogs"]},
                      {"name": "count", "type": "integer", "default": 3}],
    )
    with pytest.raises(InvalidParams) as err:
        validate({}, template="gen")
    assert err.value.field == "args.topic"
    with pytest.raises(InvalidParams):
        validate({"topic": "birds"}, template="gen")
    assert validate({"topic": "cats"}, template="gen")["args"] == {"topic": "cats", "count": 3}


def test_it_refuses_unknown_or_disabled_templates_and_files(tool):
    with pytest.raises(InvalidParams) as err:
        validate({}, template="nope")
    assert err.value.field == "template"
    CommandTemplate.objects.filter(pk=tool.pk).update(enabled=False)
    with pytest.raises(InvalidParams):
        validate({})
    with pytest.raises(InvalidParams) as err:
        PROCESSOR.validate(params={"template": "fake"}, files=["x"], user=None)
    assert err.value.field == "files"


def test_it_renders_argv_items_and_drops_optional_groups_without_values():
    argv = ["tool", "--in", "{path}", ["--limit", "{limit}"], ["--flag"], "{{literal}}"]
    assert render_argv(argv, {"path": "a b; rm -rf /", "limit": None}) == [
        "tool", "--in", "a b; rm -rf /", "--flag", "{literal}"]
    assert render_argv(argv, {"path": "p", "limit": 5})[3:5] == ["--limit", "5"]


def test_it_validates_templates_in_the_admin():
    with pytest.raises(ValidationError):
        validate_argv([])
    with pytest.raises(ValidationError):
        validate_argv([["--grouped-first"]])
    with pytest.raises(ValidationError):
        validate_argv(["tool", 5])
    validate_argv(["tool", ["--x", "{x}"]])
    for bad in ("notalist", [{"type": "string"}], [{"name": "a b"}], [{"name": "x", "type": "date"}],
                [{"name": "x"}, {"name": "x"}], [{"name": "output_dir"}], [{"name": "x", "pattern": "("}]):
        with pytest.raises(ValidationError):
            check_schema(bad)


def test_it_gates_the_kind_behind_the_operator_permission(tool, charlie, alice):
    with pytest.raises(ApiError) as err:
        services.task_submit(owner=charlie, kind="command", params={"template": "fake", "args": {}})
    assert err.value.status == 403
    assert services.task_submit(owner=alice, kind="command", params={"template": "fake", "args": {}}).pk


def test_it_uses_the_template_timeout_and_caps_overrides(tool, alice, settings):
    settings.MEDIACRAFT_MAX_TASK_TIMEOUT = 100
    task = services.task_submit(owner=alice, kind="command", params={"template": "fake"})
    assert task.timeout == 100  # the template's 120 s, capped by the site maximum
    task = services.task_submit(owner=alice, kind="command", params={"template": "fake"}, timeout=30)
    assert task.timeout == 30
    with pytest.raises(InvalidParams) as err:
        services.task_submit(owner=alice, kind="command", params={"template": "fake"}, timeout=101)
    assert err.value.field == "timeout"


def test_it_lets_everyone_run_templates_the_admin_opened(tool, charlie):
    CommandTemplate.objects.create(name="open", argv=["true"], allow_everyone=True)
    task = services.task_submit(owner=charlie, kind="command", params={"template": "open"})
    assert task.params == {"template": "open", "args": {}}
    with pytest.raises(ApiError) as err:
        services.task_submit(owner=charlie, kind="command", params={"template": "fake"})
    assert err.value.status == 403
    assert PROCESSOR.user_may_run(charlie) is True  # the kind is listed for charlie


def test_it_ships_a_countdown_demo_open_to_everyone(workers, client, redis_conn):
    import importlib

    from django.apps import apps

    # The data migration's rows are flushed between transactional tests: run it again.
    importlib.import_module("tasks.migrations.0002_countdown_template").add_countdown(apps, None)
    template = CommandTemplate.objects.get(name="countdown")
    assert template.allow_everyone and template.enabled
    workers(1)
    response = client.post("/api/tasks/", {"kind": "command", "params": {"template": "countdown", "args": {"seconds": 2}}},
                           content_type="application/json")
    assert response.status_code == 201, response.content
    task_id = response.json()["task_id"]
    from tests.conftest import wait_for

    body = wait_for(lambda: (b := client.get(f"/api/tasks/{task_id}/").json())["status"] == "completed" and b, 30,
                    message="countdown to complete")
    assert body["result"]["counted"] == 2 and body["progress"] == 100


def test_it_shows_the_shipped_countdown_in_the_viewers_language(db):
    import importlib
    import subprocess
    import sys

    from django.apps import apps
    from django.conf import settings
    from django.utils import translation

    from tasks.processors.command import build_command_form

    CommandTemplate.objects.filter(name="countdown").delete()
    importlib.import_module("tasks.migrations.0002_countdown_template").add_countdown(apps, None)
    importlib.import_module("tasks.migrations.0003_countdown_translations").translate_countdown(apps, None)
    form_class = build_command_form([CommandTemplate.objects.get(name="countdown")])
    for language, label, description in (("zh-hans", "秒数", "演示：倒计时"), ("en", "Seconds", "Demo: counts down")):
        with translation.override(language):
            form = form_class(prefix="command")
            (_name, shown, _value, fields), = form.fieldsets()
            assert shown.startswith(description)
            assert [str(f.label) for f in fields] == [label, {"zh-hans": "在第几秒失败", "en": "Fail at second"}[language]]
    # The tool reports bare percentages: the time left comes from the engine, in the viewer's language.
    run = subprocess.run([sys.executable, f"{settings.BASE_DIR}/tasks/tools/countdown.py", "--seconds", "2"],
                         capture_output=True, text=True, timeout=30, check=True)
    progress = [line for line in run.stdout.splitlines() if line.startswith("PROGRESS")]
    assert progress == ["PROGRESS 0.0", "PROGRESS 50.0"]


def test_it_leaves_an_edited_countdown_template_as_the_admin_left_it(db):
    import importlib

    from django.apps import apps

    CommandTemplate.objects.filter(name="countdown").delete()
    importlib.import_module("tasks.migrations.0002_countdown_template").add_countdown(apps, None)
    CommandTemplate.objects.filter(name="countdown").update(description="Our own words.")
    importlib.import_module("tasks.migrations.0003_countdown_translations").translate_countdown(apps, None)
    template = CommandTemplate.objects.get(name="countdown")
    assert template.description_translations == {} and "label" not in template.param_schema[0]


def template_form(name, argv, schema):
    return {"name": name, "description": "", "description_translations": "{}", "argv": json.dumps(argv),
            "param_schema": json.dumps(schema), "default_timeout": "60", "max_attempts": "1", "working_dir": "",
            "enabled": "on"}


def test_it_checks_the_commands_placeholders_when_the_admin_saves_a_template(transactional_db, redis_conn, workers,
                                                                              admin_client, alice):
    topic = [{"name": "topic", "type": "string"}]
    refused = {
        "typo": (["{python}", "gen.py", "--topic", "{topc}"],
                 "Unknown placeholders: {topc}. Known: {topic}, {output_dir}, {task_id}, {python}, {base_dir}."),
        "json": (["{python}", "-c", 'print({"a": 1})', "{topic}"], 'Unknown placeholders: {"a"}.'),
        "brace": (["{python}", "gen.py", ["--x", "a}b"]], "has a lone brace"),
        "spec": (["{python}", "gen.py", "{topic!r:>10}"], "without a format or conversion"),
        "index": (["{python}", "gen.py", "{topic[0]}"], "Unknown placeholders: {topic[0]}."),
    }
    for name, (argv, message) in refused.items():
        response = admin_client.post("/admin/tasks/commandtemplate/add/", template_form(name, argv, topic))
        assert response.status_code == 200 and message in html.unescape(response.content.decode()), name
    assert not CommandTemplate.objects.exists()

    # Doubled braces are literal ones: a JSON argument runs as written.
    argv = ["{python}", "-c", 'import json, sys; print(json.dumps({{"said": sys.argv[1], "task": "{task_id}"}}))',
            "{topic}"]
    response = admin_client.post("/admin/tasks/commandtemplate/add/", template_form("say", argv, topic))
    assert response.status_code == 302 and CommandTemplate.objects.filter(name="say").exists()
    workers(1)
    task = services.task_submit(owner=alice, kind="command", params={"template": "say", "args": {"topic": "{x} }{"}})
    task = wait_for(lambda: (t := Task.objects.get(pk=task.pk)).status in Task.TERMINAL and t, 30, message="the task")
    assert task.status == Task.Status.COMPLETED, task.error_detail
    assert task.result == {"said": "{x} }{", "task": str(task.pk)}


def test_it_refuses_to_run_a_template_written_around_the_admins_check(tool):
    from tasks.errors import TaskError
    from tasks.processors.command import check_argv

    assert render_argv(["{a}", "{b.real}", "{c[0]}", "{d:>9}", "{{e}}"], {"a": "1", "b": 2}) == ["1", "", "", "", "{e}"]
    with pytest.raises(ValidationError):
        check_argv(["tool", "{"], [])
    tool.argv = ["{python}", '{"a": 1']
    tool.save()

    class Ctx:
        params = {"template": "fake", "args": {}}

    with pytest.raises(TaskError) as err:
        PROCESSOR.run(Ctx())
    assert err.value.code == "kind_unavailable" and "lone brace" in err.value.detail
