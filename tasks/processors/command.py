"""`command`: run an admin-registered command-line tool (no shell, ever).

The tool's stdout lines `PROGRESS <0-100> [message]` become progress; its last other stdout
line, if JSON, becomes the result; on failure the exit code and stderr's tail become the error.
"""

import contextlib
import contextvars
import json
import math
import re
import string
import sys

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from tasks.errors import InvalidParams, TaskError
from tasks.models import TaskKind
from tasks.processors import Processor

PARAM_TYPES = ("string", "integer", "number", "boolean")
BUILTIN_PLACEHOLDERS = ("output_dir", "task_id", "python", "base_dir")
PROGRESS_RE = re.compile(r"^PROGRESS\s+(-?\d+(?:\.\d+)?)(?:\s+(.*))?$")
MAX_STRING = 10_000


def check_schema(schema):
    """Validate a CommandTemplate's parameter schema (admin side)."""
    if not isinstance(schema, list):
        raise ValidationError(_("The parameters must be a list."))
    seen = set()
    for item in schema:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValidationError(_("Each parameter needs a name."))
        name = item["name"]
        if not name.isidentifier() or name in BUILTIN_PLACEHOLDERS or name in seen:
            raise ValidationError(_("Parameter name %(name)s is not allowed or repeated.") % {"name": name})
        seen.add(name)
        if item.get("type", "string") not in PARAM_TYPES:
            raise ValidationError(_("Parameter %(name)s has an unknown type.") % {"name": name})
        if "choices" in item and not isinstance(item["choices"], list):
            raise ValidationError(_("The choices of %(name)s must be a list.") % {"name": name})
        if "pattern" in item:
            try:
                re.compile(item["pattern"])
            except (re.error, TypeError):
                raise ValidationError(_("The pattern of %(name)s is not a valid regular expression.") % {"name": name})


def check_argv(argv, schema):
    """Validate a CommandTemplate's argv against its parameter schema (admin side): every
    placeholder is a bare {name} of a parameter or a built-in, and a literal brace is doubled.
    What passes renders without error (render_argv)."""
    known = [spec["name"] for spec in schema] + list(BUILTIN_PLACEHOLDERS)
    unknown = []
    for part in (part for item in argv for part in (item if isinstance(item, list) else [item])):
        try:
            fields = list(string.Formatter().parse(part))
        except ValueError:
            raise ValidationError(_("%(item)s has a lone brace: write a literal { as {{ and } as }}.")
                                  % {"item": part}) from None
        for _lit, field, spec, conversion in fields:
            if field is None:
                continue
            if field not in known:
                unknown += [field] if field not in unknown else []
            elif spec or conversion:
                raise ValidationError(_("Write the placeholder {%(name)s} without a format or conversion.")
                                      % {"name": field})
    if unknown:
        raise ValidationError(_("Unknown placeholders: %(unknown)s. Known: %(known)s. "
                                "Write a literal { as {{ and } as }}.")
                              % {"unknown": ", ".join(f"{{{n}}}" for n in unknown),
                                 "known": ", ".join(f"{{{n}}}" for n in known)})


def placeholders(item):
    return [field for _lit, field, _spec, _conv in string.Formatter().parse(item) if field is not None]


def _render(part, values):
    # Substitutes names only (no str.format: an attribute, index or format spec never runs).
    return "".join(literal + ("" if field is None else _as_arg(values.get(field)))
                   for literal, field, _spec, _conv in string.Formatter().parse(part))


def _coerce(spec, value):
    """Return the value converted to the parameter's type, or raise InvalidParams."""
    name, kind = spec["name"], spec.get("type", "string")
    field = f"args.{name}"
    if kind == "string":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidParams(_("Parameter %(name)s must be text.") % {"name": name}, field)
        value = str(value)
        if "\x00" in value or len(value) > MAX_STRING:
            raise InvalidParams(_("Parameter %(name)s is too long or contains a NUL byte.") % {"name": name}, field)
        if spec.get("pattern") and not re.fullmatch(spec["pattern"], value):
            raise InvalidParams(
                _("Parameter %(name)s does not match the pattern %(pattern)s.") % {"name": name, "pattern": spec["pattern"]},
                field,
            )
    elif kind == "integer":
        if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 10**18:
            raise InvalidParams(_("Parameter %(name)s must be a whole number.") % {"name": name}, field)
    elif kind == "number":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidParams(_("Parameter %(name)s must be a number.") % {"name": name}, field)
    elif kind == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "1", "on", "yes", "false", "0", "off", "no"):
            value = value.lower() in ("true", "1", "on", "yes")
        if not isinstance(value, bool):
            raise InvalidParams(_("Parameter %(name)s must be true or false.") % {"name": name}, field)
    for bound, op in (("min", lambda v, b: v < b), ("max", lambda v, b: v > b)):
        if kind in ("integer", "number") and spec.get(bound) is not None and op(value, spec[bound]):
            raise InvalidParams(
                _("Parameter %(name)s must be between %(min)s and %(max)s.")
                % {"name": name, "min": spec.get("min", "-∞"), "max": spec.get("max", "∞")},
                field,
            )
    if spec.get("choices") and value not in spec["choices"]:
        choices = ", ".join(str(c) for c in spec["choices"])
        raise InvalidParams(_("Parameter %(name)s must be one of: %(choices)s.") % {"name": name, "choices": choices}, field)
    return value


def render_argv(argv, values):
    """Format argv items; a nested list is an optional group, kept only if all its values are set."""
    out = []
    for item in argv:
        group = item if isinstance(item, list) else [item]
        names = [name for part in group for name in placeholders(part)]
        if isinstance(item, list) and any(values.get(n) is None for n in names):
            continue
        for part in group:
            out.append(_render(part, values))
    return out


def _as_arg(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def could_name_a_template(name):
    """False for what no template is named, and what PostgreSQL would refuse to compare (NUL)."""
    return isinstance(name, str) and 0 < len(name) <= 60 and "\x00" not in name


# The templates one submit has read (CommandProcessor.reading_once), by name; per thread and
# per task of asyncio, so concurrent requests never see each other's.
_read = contextvars.ContextVar("command_templates_read", default=None)


class CommandProcessor(Processor):
    kind = TaskKind.COMMAND
    operator_only = True
    default_timeout = 1800

    @contextlib.contextmanager
    def reading_once(self):
        token = _read.set({})
        try:
            yield
        finally:
            _read.reset(token)

    def _enabled(self, name):
        """The enabled template named `name`, or None: inside reading_once, read only once."""
        from mediacraft import sql
        from tasks.models import CommandTemplate

        read = _read.get()
        if read is None or name not in read:
            # Read on every submit of the kind: SQL, see mediacraft/sql.py.
            template = next(iter(CommandTemplate.objects.raw(
                f"SELECT * FROM {sql.name(CommandTemplate)} WHERE {sql.name(CommandTemplate, 'name')} = %s "
                f"AND {sql.name(CommandTemplate, 'enabled')} = %s", [name, True])), None)
            if read is None:
                return template
            read[name] = template
        return read[name]

    def user_may_run(self, user, params=None):
        """Operators run any template; others only templates the admin opened to everyone."""
        from tasks.models import CommandTemplate

        # The open template first: one query, where the permission check costs two.
        if params is None:
            is_open = CommandTemplate.objects.filter(enabled=True, allow_everyone=True).exists()
        else:
            name = params.get("template")
            is_open = could_name_a_template(name) and getattr(self._enabled(name), "allow_everyone", False)
        return is_open or super().user_may_run(user)

    def _template(self, name):
        if not isinstance(name, str) or not name:
            raise InvalidParams(_("Choose a command template."), "template")
        if not could_name_a_template(name):
            raise InvalidParams(_("There is no enabled command template named %(name)s.")
                                % {"name": name.replace("\x00", "")[:60]}, "template")
        template = self._enabled(name)
        if template is None:
            raise InvalidParams(_("There is no enabled command template named %(name)s.") % {"name": name[:60]}, "template")
        return template

    def validate(self, *, params, files, user):
        if files:
            raise InvalidParams(_("Command tasks take no files."), "files")
        template = self._template(params.get("template"))
        args = params.get("args", {})
        if not isinstance(args, dict):
            raise InvalidParams(_("args must be an object of parameter values."), "args")
        schema = {spec["name"]: spec for spec in template.param_schema}
        unknown = sorted(set(args) - set(schema))
        if unknown:
            raise InvalidParams(_("Unknown parameter: %(name)s.") % {"name": str(unknown[0])[:60]}, f"args.{unknown[0]}"[:80])
        cleaned = {}
        for name, spec in schema.items():
            value = args.get(name, spec.get("default"))
            if value is None or value == "":
                if spec.get("required"):
                    raise InvalidParams(_("Parameter %(name)s is required.") % {"name": name}, f"args.{name}")
                continue
            cleaned[name] = _coerce(spec, value)
        return {"template": template.name, "args": cleaned}

    def make_title(self, params):
        return params["template"]

    def form_class(self, user):
        """One select of the templates `user` may run, and per template a group of fields
        generated from its param_schema (only the chosen template's group is validated)."""
        from tasks.models import CommandTemplate

        templates = CommandTemplate.objects.filter(enabled=True).order_by("name")
        if not Processor.user_may_run(self, user):
            templates = templates.filter(allow_everyone=True)
        templates = list(templates)
        return build_command_form(templates) if templates else None

    def default_timeout_for(self, params):
        return self.limits_for(params)[0]

    def max_attempts_for(self, params):
        # A tool may have side effects: the admin decides whether a lost run may be repeated.
        return self.limits_for(params)[1]

    def limits_for(self, params):
        from tasks.models import CommandTemplate

        template = (_read.get() or {}).get(params["template"])
        if template is not None:
            return template.default_timeout, template.max_attempts
        row = CommandTemplate.objects.filter(name=params["template"]).values_list("default_timeout", "max_attempts").first()
        return row if row else (self.default_timeout, 1)

    def run(self, ctx):
        from tasks.models import CommandTemplate

        template = CommandTemplate.objects.filter(name=ctx.params["template"], enabled=True).first()
        if template is None:
            raise TaskError("kind_unavailable", detail=f"command template {ctx.params['template']!r} is gone or disabled")
        try:  # saved before the admin checked commands, or written around the admin
            check_argv(template.argv, template.param_schema)
        except ValidationError as exc:
            raise TaskError("kind_unavailable", detail=f"command template {template.name!r}: {exc.messages[0]}") from None
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        values = {**ctx.params["args"], "output_dir": str(ctx.output_dir), "task_id": ctx.task_id,
                  "python": sys.executable, "base_dir": str(settings.BASE_DIR)}
        argv = render_argv(template.argv, values)
        last_line = None

        def on_stdout(line):
            nonlocal last_line
            match = PROGRESS_RE.match(line.strip())
            if match:
                text = (match.group(2) or "").strip()[:300]
                ctx.progress(float(match.group(1)), stage="running",
                             code="tool_message" if text else "running", params={"text": text} if text else None)
            elif line.strip():
                last_line = line.strip()

        ctx.progress(0, stage="running", code="running")
        run = ctx.run(argv, cwd=template.working_dir or str(ctx.output_dir), on_stdout=on_stdout,
                      env={"MEDIACRAFT_TASK_ID": ctx.task_id, "MEDIACRAFT_OUTPUT_DIR": str(ctx.output_dir)})
        if run.returncode < 0:
            raise TaskError("command_killed", {"signal": -run.returncode}, detail=run.stderr_tail)
        if run.returncode != 0:
            raise TaskError("command_failed", {"exit_code": run.returncode}, detail=run.stderr_tail)
        result = {"exit_code": 0}
        if last_line and last_line[0] in "{[":
            try:
                parsed = json.loads(last_line)
            except ValueError:
                raise TaskError("command_bad_result", detail=last_line[-2000:]) from None
            result = parsed if isinstance(parsed, dict) else {"value": parsed}
        elif last_line:
            result["output"] = last_line[-2000:]
        ctx.progress(100, stage="done", code="done")
        return result


def _localized(value):
    """An admin-written schema text: a string, or {language code: text} picked for the viewer."""
    from django.utils.translation import get_language

    if isinstance(value, dict):
        language = (get_language() or "en").lower()
        for code in (language, language.split("-")[0], "en"):
            if isinstance(value.get(code), str):
                return value[code]
        return next((v for v in value.values() if isinstance(v, str)), "")
    return value if isinstance(value, str) else ""


def template_description(template):
    """The template's description in the viewer's language, when the admin gave that language."""
    return _localized({"en": template.description, **(template.description_translations or {})})


def _param_help(spec):
    kind, low, high = spec.get("type", "string"), spec.get("min"), spec.get("max")
    parts = [_localized(spec.get("help"))] if spec.get("help") else []
    if kind in ("integer", "number"):
        texts = {
            "integer": (_("A whole number from %(min)s to %(max)s."), _("A whole number, at least %(min)s."),
                        _("A whole number, at most %(max)s."), _("A whole number.")),
            "number": (_("A number from %(min)s to %(max)s."), _("A number, at least %(min)s."),
                       _("A number, at most %(max)s."), _("A number.")),
        }[kind]
        index = 0 if low is not None and high is not None else 1 if low is not None else 2 if high is not None else 3
        parts.append(texts[index] % {"min": low, "max": high} if index < 3 else texts[3])
    elif kind == "string" and spec.get("pattern") and not spec.get("choices"):
        parts.append(_("Must match the pattern %(pattern)s.") % {"pattern": spec["pattern"]})
    if spec.get("default") not in (None, "") and kind != "boolean":
        parts.append(_("Default: %(value)s.") % {"value": spec["default"]})
    return " ".join(p for p in parts if p)


def _param_field(spec):
    """A form field for one param_schema entry; validate() still has the last word."""
    from django import forms

    name, kind = spec["name"], spec.get("type", "string")
    label = _localized(spec.get("label")) or name.replace("_", " ").capitalize()
    options = {"label": label, "required": bool(spec.get("required")), "help_text": _param_help(spec),
               "initial": spec.get("default")}
    if spec.get("choices"):
        choices = [(str(c), str(c)) for c in spec["choices"]]
        if not options["required"]:
            choices.insert(0, ("", _("(not set)")))
        return forms.ChoiceField(choices=choices, **options)
    if kind == "integer":
        return forms.IntegerField(min_value=spec.get("min"), max_value=spec.get("max"), **options)
    if kind == "number":
        return forms.FloatField(min_value=spec.get("min"), max_value=spec.get("max"),
                                widget=forms.NumberInput(attrs={"step": "any"}), **options)
    if kind == "boolean":
        options["required"] = False  # an unticked box is a value (false), not a missing one
        return forms.BooleanField(**options)
    return forms.CharField(max_length=MAX_STRING, strip=False, **options)


def build_command_form(templates):
    """The command kind's TaskForm class for these templates (the ones the viewer may run)."""
    from django import forms

    from tasks.forms import TaskForm

    specs = {t.name: {spec["name"]: spec for spec in t.param_schema} for t in templates}
    by_name = {t.name: t for t in templates}

    def field_name(template, param):
        return f"{template}__{param}"

    class CommandForm(TaskForm):
        template = forms.ChoiceField(
            label=_("Tool"), choices=[(t.name, t.name) for t in templates], initial=templates[0].name,
            help_text=_("The command-line tools an administrator has made available to you."),
        )

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            for template, params in specs.items():
                for param, spec in params.items():
                    self.fields[field_name(template, param)] = _param_field(spec)
            chosen = self.chosen_template()
            for template, params in specs.items():
                if template != chosen:
                    for param in params:
                        self.fields[field_name(template, param)].required = False

        def chosen_template(self):
            value = self.data.get(self.add_prefix("template")) if self.is_bound else None
            if value not in specs:
                value = self.initial.get("template") or self.fields["template"].initial
            return value if value in specs else templates[0].name

        def clean(self):
            cleaned = super().clean()
            chosen = self.chosen_template()
            for template, params in specs.items():
                if template != chosen:
                    for param in params:
                        self._errors.pop(field_name(template, param), None)
                        cleaned.pop(field_name(template, param), None)
            return cleaned

        def to_params(self):
            template = self.cleaned_data["template"]
            args = {}
            for param, spec in specs[template].items():
                value = self.cleaned_data.get(field_name(template, param))
                if isinstance(value, bool) and not value and spec.get("default") is None and not spec.get("required"):
                    continue  # an unticked optional flag without a default stays unset
                if value is not None and value != "":
                    args[param] = value
            return {"template": template, "args": args}

        def initial_for(self, params):
            template, args = params.get("template"), params.get("args", {})
            if template not in specs or not set(args) <= set(specs[template]):
                return None  # a tool closed to this user since, or changed
            return {"template": template, **{field_name(template, param): value for param, value in args.items()}}

        def param_fields(self):
            chosen = self.chosen_template()
            mapping = {"template": "template", "title": "title", "priority": "priority"}
            mapping.update({f"args.{param}": field_name(chosen, param) for param in specs.get(chosen, {})})
            return mapping

        def switch_field(self):
            return "template"

        def fieldsets(self):
            return [
                (name, template_description(by_name[name]), name, [self[field_name(name, p)] for p in params])
                for name, params in specs.items()
            ]

        def lead_fields(self):
            return [self["template"]]

    CommandForm.kind = TaskKind.COMMAND.value
    return CommandForm


PROCESSOR = CommandProcessor()
