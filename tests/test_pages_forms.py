"""The new-task form contract: Processor.form_class(user) gives a TaskForm whose cleaned data
maps to the kind's params; the command kind's form is generated from its templates' schemas;
Processor.validate stays the authority and its errors land on the right field."""

import re
from html import unescape as html_unescape
from html.parser import HTMLParser

import pytest
from django.utils import translation

from tasks.errors import InvalidParams
from tasks.forms import TaskForm
from tasks.models import CommandTemplate, Task
from tasks.processors import Processor, get_processor, registry

P = "command-"


@pytest.fixture
def templates(db):
    CommandTemplate.objects.filter(name="countdown").delete()
    open_one = CommandTemplate.objects.create(
        name="greet", description="Says hello", allow_everyone=True, argv=["echo", "{who}"],
        param_schema=[
            {"name": "who", "required": True, "pattern": "[a-z]{1,10}", "help": {"en": "Who to greet", "zh-hans": "问候谁"},
             "label": {"en": "Name", "zh-hans": "名字"}},
            {"name": "times", "type": "integer", "min": 1, "max": 5, "default": 2},
            {"name": "ratio", "type": "number", "min": 0},
            {"name": "loud", "type": "boolean"},
            {"name": "tone", "choices": ["warm", "dry"]},
        ],
    )
    operator_only = CommandTemplate.objects.create(
        name="wipe", argv=["true", "{depth}"], param_schema=[{"name": "depth", "type": "integer", "required": True}],
    )
    CommandTemplate.objects.create(name="off", enabled=False, allow_everyone=True, argv=["true"])
    return open_one, operator_only


def form_for(user, data=None):
    cls = get_processor("command").form_class(user)
    return cls(data, prefix="command") if data is not None else cls(prefix="command")


def test_it_gives_every_processor_the_form_contract():
    assert Processor.form_class.__doc__ and "TaskForm" in Processor.form_class.__doc__
    for processor in registry().values():
        assert hasattr(processor, "form_class")


def test_it_offers_visitors_only_the_open_templates_and_operators_all(templates, alice, charlie):
    assert [c for c, _l in form_for(None).fields["template"].choices] == ["greet"]
    assert [c for c, _l in form_for(charlie).fields["template"].choices] == ["greet"]
    assert [c for c, _l in form_for(alice).fields["template"].choices] == ["greet", "wipe"]


def test_it_hides_the_kind_when_no_template_is_open(db, charlie):
    CommandTemplate.objects.all().delete()
    CommandTemplate.objects.create(name="wipe", argv=["true"])
    assert get_processor("command").form_class(charlie) is None


def test_it_generates_typed_fields_with_labels_and_help_from_the_schema(templates, alice):
    form = form_for(alice)
    assert issubclass(type(form), TaskForm) and form.kind == "command"
    who, times, ratio = form.fields["greet__who"], form.fields["greet__times"], form.fields["greet__ratio"]
    assert who.required and who.label == "Name" and who.help_text.startswith("Who to greet")
    assert "pattern" in who.help_text
    assert type(times).__name__ == "IntegerField" and times.min_value == 1 and times.max_value == 5
    assert times.initial == 2 and "from 1 to 5" in times.help_text and "Default: 2" in times.help_text
    assert type(ratio).__name__ == "FloatField" and "at least 0" in ratio.help_text
    assert type(form.fields["greet__loud"]).__name__ == "BooleanField"
    assert [c for c, _l in form.fields["greet__tone"].choices] == ["", "warm", "dry"]
    html = str(form["greet__times"])
    assert 'min="1"' in html and 'max="5"' in html and 'aria-describedby="id_command-greet__times_helptext"' in html
    groups = {switch: [f.name for f in fields] for _legend, _desc, switch, fields in form.fieldsets()}
    assert groups == {"greet": ["greet__who", "greet__times", "greet__ratio", "greet__loud", "greet__tone"],
                      "wipe": ["wipe__depth"]}
    assert form.switch_id == "id_command-template"


def test_it_translates_labels_help_texts_and_errors(templates, alice):
    with translation.override("zh-hans"):
        form = form_for(alice, {P + "template": "greet", P + "priority": "5", P + "greet__times": "abc"})
        assert form.fields["greet__who"].label == "名字"
        assert form.fields["greet__who"].help_text.startswith("问候谁")
        assert not form.is_valid()
        assert form.errors["greet__who"] == ["这个字段是必填项。"]
        assert form.errors["greet__times"] == ["输入整数。"]


def test_it_maps_cleaned_data_to_params_of_the_chosen_template_only(templates, alice):
    form = form_for(alice, {P + "template": "greet", P + "priority": "7", P + "title": "Hi",
                            P + "greet__who": "bob", P + "greet__times": "3", P + "greet__loud": "on",
                            P + "wipe__depth": "not a number"})
    assert form.is_valid(), form.errors
    assert form.to_params() == {"template": "greet", "args": {"who": "bob", "times": 3, "loud": True}}
    assert form.submission() == {"kind": "command", "params": form.to_params(), "title": "Hi", "priority": 7}
    params = get_processor("command").validate(params=form.to_params(), files=[], user=alice)
    assert params == {"template": "greet", "args": {"who": "bob", "times": 3, "loud": True}}


def test_it_requires_the_fields_of_the_chosen_template(templates, alice):
    form = form_for(alice, {P + "template": "wipe", P + "priority": "5"})
    assert not form.is_valid()
    assert set(form.errors) == {"wipe__depth"}


def test_it_puts_validate_errors_back_on_the_field_they_name(templates, alice):
    form = form_for(alice, {P + "template": "greet", P + "priority": "5", P + "greet__who": "NOT lower"})
    assert form.is_valid()
    with pytest.raises(InvalidParams) as caught:
        get_processor("command").validate(params=form.to_params(), files=[], user=alice)
    form.add_invalid_params(caught.value)
    assert "does not match the pattern" in form.errors["greet__who"][0]
    assert form.field_for("args.who") == "greet__who"
    assert form.field_for("template") == "template"
    assert form.field_for("args") is None and form.field_for("files") is None
    assert form.field_map()["args.who"] == "id_command-greet__who"
    form.add_invalid_params(InvalidParams("whole form", None))
    assert form.non_field_errors() == ["whole form"]


def test_it_sends_upload_fields_in_order_and_does_not_require_them_before_the_upload(db):
    from django import forms
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tasks.forms import MultipleFileField

    class TwoUploads(TaskForm):
        kind = "merge"
        first = forms.FileField()
        rest = MultipleFileField()
        mode = forms.ChoiceField(choices=[("copy", "copy")])

    one, two, three = (SimpleUploadedFile(n, b"x" * i) for i, n in enumerate(("a.mp4", "b.mp4", "c.mp4"), 1))
    from django.utils.datastructures import MultiValueDict

    form = TwoUploads({"priority": "5", "mode": "copy"}, MultiValueDict({"first": [one], "rest": [two, three]}))
    assert form.is_valid(), form.errors
    assert form.upload_fields() == ["first", "rest"] and form.has_uploads
    assert [f.name for f in form.uploaded_files()] == ["a.mp4", "b.mp4", "c.mp4"]
    assert form.to_params() == {"mode": "copy"}
    assert form.field_for("files") == "first" and form.field_for("mode") == "mode"
    prepared = TwoUploads({"priority": "5", "mode": "copy"}).for_prepare()
    assert prepared.is_valid(), prepared.errors
    assert prepared.submission() == {"kind": "merge", "params": {"mode": "copy"}, "title": "", "priority": 5}


# --- a copy of a task: its settings back in the new-task form ----------------------------------

class FormValues(HTMLParser):
    """What a browser would post from the page's new-task form (inputs, checked boxes, selected
    options, textareas), by field name."""

    def __init__(self):
        super().__init__()
        self.values, self.select, self.textarea, self.in_form = {}, None, None, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and "data-task-form" in a:
            self.in_form = True
        if not self.in_form:
            return
        if tag == "input" and a.get("name") and a.get("type") not in ("file", "submit"):
            if a.get("type") != "checkbox":
                self.values[a["name"]] = a.get("value", "")
            elif "checked" in a:
                self.values[a["name"]] = a.get("value", "on")
        elif tag == "select":
            self.select = a["name"]
        elif tag == "option" and self.select and "selected" in a:
            self.values[self.select] = a["value"]
        elif tag == "textarea":
            self.textarea = a["name"]
            self.values[self.textarea] = ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.in_form = False
        elif tag == "select":
            self.select = None
        elif tag == "textarea":
            # As a browser reads it: the one line break right after <textarea> is not content.
            self.values[self.textarea] = self.values[self.textarea].removeprefix("\n")
            self.textarea = None

    def handle_data(self, data):
        if self.textarea:
            self.values[self.textarea] += data


def page_form(html):
    parser = FormValues()
    parser.feed(html)
    return parser.values


def copy_link(client, task):
    found = re.search(r'href="([^"]+)" data-copy-task', client.get(f"/tasks/{task.pk}/").content.decode())
    return html_unescape(found.group(1)) if found else None


def submit_copy(client, task):
    """Open the task's copy link, post the form as the page fills it in; the new task."""
    from tasks.models import Task

    link = copy_link(client, task)
    assert link == f"/new/{task.kind}/?from={task.pk}"
    values = page_form(client.get(link).content.decode())
    response = client.post(f"/new/{task.kind}/", values)
    assert response.status_code == 302, (values, re.findall(r"field__error[^>]*>([^<]+)<|role=\"alert\"[^>]*>([^<]+)<", response.content.decode()))
    return Task.objects.get(pk=response["Location"].split("/")[2])


@pytest.fixture
def qbittorrents(db):
    from torrents.models import QbittorrentConnection

    return [QbittorrentConnection.objects.create(name=name, url="http://127.0.0.1:9") for name in ("main", "spare")]


COPIES = {
    "command": {"template": "greet", "args": {"who": "ann", "times": 4, "ratio": 0.5, "loud": True, "tone": "dry"}},
    "command with unset options": {"template": "greet", "args": {"who": "bo"}},
    "download": {"urls": "http://93.184.216.34/a.bin\nhttp://93.184.216.34/b.bin\nhttp://93.184.216.34/c.bin",
                 "names": "\nsecond.bin", "connections": 3},
    "calibration": {"hashes": "a" * 40 + "\n" + "b" * 40, "connection": "spare"},
}


@pytest.mark.parametrize("case", COPIES)
def test_a_copy_of_a_task_opens_its_form_filled_in_and_submits_the_same_settings(case, templates, qbittorrents,
                                                                                 alice, redis_conn):
    from django.test import Client

    from tasks import services

    kind = case.split()[0]
    original = services.task_submit(owner=alice, kind=kind, params=COPIES[case], priority=7, title=f"my {case}")
    client = Client()
    client.force_login(alice)
    copy = submit_copy(client, original)
    assert copy.pk != original.pk and copy.kind == original.kind
    assert copy.params == original.params
    assert (copy.title, copy.priority) == (f"my {case}", 7)


def test_a_copy_of_a_task_with_a_default_title_gets_a_new_default_from_its_own_params(templates, alice, redis_conn):
    from django.test import Client

    from tasks import services

    client = Client()
    client.force_login(alice)
    original = services.task_submit(owner=alice, kind="download", params={"urls": ["http://93.184.216.34/clip.mp4"]})
    assert original.title == "clip.mp4"
    values = page_form(client.get(copy_link(client, original)).content.decode())
    assert values["download-title"] == ""  # not taken for one the user typed
    values["download-urls"] = "http://93.184.216.34/big.bin"
    response = client.post("/new/download/", values)
    assert response.status_code == 302
    assert Task.objects.get(pk=response["Location"].split("/")[2]).title == "big.bin"


def test_default_titles_are_the_same_in_every_language(alice):
    from storage.models import StoredFile

    first = StoredFile.objects.create(owner=alice, role="input", original_name="v2.mp4", size=1, stored_name="f",
                                      path="f", sha256="0" * 64)
    titles = set()
    for language in ("en", "zh-hans"):
        with translation.override(language):
            titles.add(get_processor("merge").make_title({"files": [str(first.pk), "another"]}))
    assert titles == {"v2.mp4 (+1)"}


def test_a_task_its_form_cannot_carry_has_no_copy_link(templates, alice, bob, redis_conn):
    from django.test import Client

    from tasks import services
    from tasks.models import Task

    client = Client()
    client.force_login(alice)
    # A merge stored by an older version, with a parameter its form no longer has.
    old_merge = Task.objects.create(owner=alice, kind="merge", params={"files": ["x", "y"], "speed": 2}, timeout=60)
    odd_watermark = Task.objects.create(owner=alice, kind="watermark", timeout=60,
                                        params={"files": ["not-an-id"], "rects": [[1, 2, 3, 4]]})
    assert copy_link(client, odd_watermark) is None
    # A hand-made link to the form with ids that name no file: the form, with nothing reused.
    Task.objects.filter(pk=odd_watermark.pk).update(params={"files": ["not-an-id"], "rects": [
        {"x": 1, "y": 2, "w": 3, "h": 4}]})
    page = client.get(f"/new/watermark/?from={odd_watermark.pk}")
    assert page.status_code == 200 and "data-reuse" not in page.content.decode()
    assert 'name="watermark-video_file"' in page.content.decode() and "not-an-id" not in page.content.decode()
    seed = services.task_submit(owner=alice, kind="download", params={"urls": ["http://93.184.216.34/a"],
                                                                      "ruleGroup": {"id": "g"}})
    greet = services.task_submit(owner=alice, kind="command", params={"template": "greet", "args": {"who": "x"}})
    assert copy_link(client, greet)
    CommandTemplate.objects.filter(name="greet").update(enabled=False)  # closed since
    for task in (old_merge, seed, greet):
        assert copy_link(client, task) is None, task.kind
    # Someone else's task, or a kind that is not its own: an empty form, nothing of that task in it.
    CommandTemplate.objects.filter(name="greet").update(enabled=True)
    bobs = services.task_submit(owner=bob, kind="command", params={"template": "greet", "args": {"who": "secret"}},
                                title="bob's own")
    for link in (f"/new/command/?from={bobs.pk}", f"/new/download/?from={greet.pk}", "/new/command/?from=nonsense"):
        response = client.get(link)
        assert response.status_code == 200
        assert "secret" not in response.content.decode() and "bob&#x27;s own" not in response.content.decode()
        assert 'value="x"' not in response.content.decode()
