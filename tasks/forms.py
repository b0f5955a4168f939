"""New-task forms: the contract between a kind's processor and the pages.

A processor offers a page form through `Processor.form_class(user)`, which returns a subclass of
`TaskForm` (or None: the kind is API-only). The page renders the form, and:

- without uploads, the browser POSTs it to the page, which calls `task_submit` with
  `form.to_params()`, `form.uploaded_files()`, `form.cleaned_data["title"]` and `["priority"]`;
- with uploads (`Processor.accepts_files`), the page first POSTs the fields without the files to
  the page with `X-MediaCraft-Prepare: 1` and gets back `submission()` (kind, params, title,
  priority) and `field_map()`, then sends that plus the files, in order, as one multipart XHR to
  `POST /api/tasks/` (byte-accurate progress, cancellable). Without JavaScript the same form
  still works as a plain multipart POST to the page.

`Processor.validate` stays the authority: an `InvalidParams(message, field)` it raises is put
back on the form field `field_for(field)` names (or on the form as a whole).
"""

import json

from django import forms
from django.utils.translation import gettext_lazy as _


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input, kept in the order the user picked them."""

    widget = MultipleFileInput

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"multiple": True}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, (list, tuple)):
            cleaned = [super(MultipleFileField, self).clean(item, initial) for item in data if item]
            if not cleaned and self.required:
                raise forms.ValidationError(self.error_messages["required"], code="required")
            return cleaned
        single = super().clean(data, initial)
        return [single] if single else []


def as_lines(values):
    """A list param back as the text of its textarea: one line each, an empty one for None."""
    return "\n".join("" if value is None else str(value) for value in values).rstrip("\n")


class TaskForm(forms.Form):
    """Base of every kind's new-task form. Subclasses add the kind's fields; the common ones
    (title, priority) are added here and are not params."""

    COMMON_FIELDS = ("title", "priority")
    kind = None  # set by the processor's form_class()

    title = forms.CharField(
        label=_("Title"), required=False, max_length=200,
        help_text=_("Optional; shown in your task list instead of the default name."),
    )
    priority = forms.IntegerField(
        label=_("Priority"), min_value=1, max_value=10, initial=5,
        help_text=_("1 (lowest) to 10 (highest); among your waiting tasks, higher priority starts first."),
    )

    # -- what a subclass may override -------------------------------------------------------

    def to_params(self):
        """The kind's params from cleaned_data (after is_valid()). Default: every field that is
        neither common nor an upload, by its name."""
        skip = set(self.COMMON_FIELDS) | set(self.upload_fields())
        return {name: value for name, value in self.cleaned_data.items() if name not in skip}

    def initial_for(self, params):
        """Initial values of this form for a new task with these params (a task's, as its kind's
        validate() stored them), or None when the form cannot carry them all (a kind's stored
        uploads, say: nobody can choose a file for the user). Default: each param in the field
        of its name, a list as lines."""
        if not set(params) <= set(self.fields) - set(self.COMMON_FIELDS) - set(self.upload_fields()):
            return None
        return {name: as_lines(value) if isinstance(value, list) else value for name, value in params.items()}

    def reused_ids(self):
        """Ids of the input files a copy of a task would use again (from initial_for). Default: none."""
        return []

    def param_fields(self):
        """{param path as InvalidParams names it: form field name}. Default: the field names."""
        skip = set(self.COMMON_FIELDS) | set(self.upload_fields())
        mapping = {name: name for name in self.fields if name not in skip}
        for name in self.upload_fields()[:1]:
            mapping["files"] = name
        mapping.update({name: name for name in self.COMMON_FIELDS})
        return mapping

    # -- used by the pages ------------------------------------------------------------------

    def upload_fields(self):
        """Names of the file fields, in the order their files are sent."""
        return [name for name, field in self.fields.items() if isinstance(field, forms.FileField)]

    @property
    def has_uploads(self):
        return bool(self.upload_fields())

    def uploaded_files(self):
        """The selected files (after is_valid()), field by field, in order."""
        files = []
        for name in self.upload_fields():
            value = self.cleaned_data.get(name)
            files.extend(value if isinstance(value, list) else [value] if value else [])
        return files

    def offer_reuse(self, files):
        """A copy of a task: its input files (StoredFiles, in order) go to the new task unless
        other files are chosen; the file fields say so and are no longer required."""
        names = ", ".join(f.original_name for f in files)
        reuse = json.dumps([{"id": str(f.pk), "name": f.original_name, "size": f.size, "media": f.media} for f in files])
        for name in self.upload_fields():
            field = self.fields[name]
            field.required = False
            field.help_text = _("Leave it empty to use the copied task's files again (%(names)s), or choose "
                                "others.") % {"names": names}
            field.widget.attrs["data-reuse"] = reuse

    def for_prepare(self):
        """Before the upload step the files are not sent: do not require them."""
        for name in self.upload_fields():
            self.fields[name].required = False
        return self

    def field_for(self, path):
        """The form field an InvalidParams field path belongs to, or None (the whole form)."""
        if not path:
            return None
        mapping = self.param_fields()
        path = str(path)
        while path:
            if path in mapping and mapping[path] in self.fields:
                return mapping[path]
            path = path.rpartition(".")[0]
        return None

    def field_map(self):
        """{param path: HTML id of its input}, for the upload step's errors."""
        return {path: self[name].auto_id for path, name in self.param_fields().items() if name in self.fields}

    def submission(self):
        """What POST /api/tasks/ needs besides the files (after is_valid())."""
        return {
            "kind": self.kind,
            "params": self.to_params(),
            "title": self.cleaned_data.get("title") or "",
            "priority": self.cleaned_data.get("priority") or 5,
        }

    def add_invalid_params(self, exc):
        """Put a processor's InvalidParams on the field it names."""
        self.add_error(self.field_for(getattr(exc, "field", None)), str(exc.message))

    def kind_fields(self):
        """Bound fields of the kind itself (not title/priority, not hidden ones)."""
        return [self[name] for name in self.fields if name not in self.COMMON_FIELDS and not self[name].is_hidden]

    def lead_fields(self):
        """Bound fields drawn above the groups (command: the tool select). Default: none."""
        return []

    def common_fields(self):
        return [self[name] for name in self.COMMON_FIELDS if name in self.fields]

    def fieldsets(self):
        """[(legend, description, switch value or None, [bound fields])] for the template; a
        subclass groups fields (command: one group per tool). Default: one untitled group of
        every kind field (drawn without a box)."""
        lead = {field.name for field in self.lead_fields()}
        return [(None, None, None, [field for field in self.kind_fields() if field.name not in lead])]

    def switch_field(self):
        """Name of a choice field whose value selects which fieldset is shown, or None."""
        return None

    @property
    def switch_id(self):
        name = self.switch_field()
        return self[name].auto_id if name else ""
