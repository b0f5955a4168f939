"""Page forms of the video kinds (the contract is in tasks/forms.py). With JavaScript the
watermark form uploads the video as soon as it is chosen (a staged upload, named by id in
`video_file`), shows a frame from the preview endpoint and lets the user draw the boxes on it
(static/mediacraft/js/boxes.js); the numbers stay editable and work without it. The merge form's
files can be put in order before they are sent."""

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from tasks.forms import MultipleFileField, MultipleFileInput, TaskForm

WATERMARK_PARAMS = {"files", "rects", "start", "end", "method", "edge", "notes"}
MERGE_PARAMS = {"files", "size", "fps", "mode"}

BOX_RE = re.compile(r"^\s*(-?\d+)\s*[,;\s]\s*(-?\d+)\s*[,;\s]\s*(-?\d+)\s*[,;\s]\s*(-?\d+)\s*$")


class WatermarkForm(TaskForm):
    kind = "watermark"

    video = forms.FileField(
        label=_("Video"), widget=forms.ClearableFileInput(attrs={"data-boxes-source": "", "accept": "video/*"}),
        help_text=_("The video to clean. Choose it first: a frame of it appears below to draw the boxes on."),
    )
    video_file = forms.CharField(required=False, widget=forms.HiddenInput(attrs={"data-staged": ""}))
    rects = forms.CharField(
        label=_("Logo boxes"),
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "20, 20, 160, 60", "data-boxes": ""}),
        help_text=_("One box per line: x, y, width, height in the video's pixels, from its top-left corner."),
    )
    method = forms.ChoiceField(
        label=_("Method"), initial="delogo",
        choices=[("delogo", _("Blur from the surrounding pixels (delogo)")),
                 ("removelogo", _("Fill from a mask of the boxes (removelogo)"))],
    )
    start = forms.FloatField(label=_("From second"), required=False, min_value=0,
                             help_text=_("Leave empty to start at the beginning."))
    end = forms.FloatField(label=_("To second"), required=False, min_value=0,
                           help_text=_("Leave empty to go to the end."))
    edge = forms.ChoiceField(
        label=_("Boxes at the edge"), initial="clamp",
        choices=[("clamp", _("Move them 1 pixel inside the frame")), ("refuse", _("Refuse the task"))],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.data.get(self.add_prefix("video_file")):
            self.fields["video"].required = False  # already uploaded (staged), named by id

    def clean_rects(self):
        boxes = []
        for number, line in enumerate(self.cleaned_data["rects"].splitlines(), start=1):
            if not line.strip():
                continue
            match = BOX_RE.match(line)
            if not match:
                raise forms.ValidationError(_("Line %(n)s is not four whole numbers (x, y, width, height).")
                                            % {"n": number})
            if any(len(v.lstrip("-")) > 9 for v in match.groups()):  # int() cannot read 4,300 digits
                raise forms.ValidationError(_("Line %(n)s has a number larger than any video frame.") % {"n": number})
            x, y, w, h = (int(v) for v in match.groups())
            boxes.append({"x": x, "y": y, "w": w, "h": h})
        if not boxes:
            raise forms.ValidationError(_("Enter at least one box."))
        return boxes

    def initial_for(self, params):
        # The copy uses the task's video again (the same id a staged upload would have).
        files, rects = params.get("files"), params.get("rects")
        if not set(params) <= WATERMARK_PARAMS or not isinstance(files, list) or len(files) != 1 \
                or not isinstance(files[0], str) or not isinstance(rects, list) \
                or not all(isinstance(r, dict) and set(r) == {"x", "y", "w", "h"} for r in rects):
            return None  # not what this form stores (an older task's, say): no copy
        initial = {"video_file": files[0], "method": params.get("method", "delogo"), "edge": params.get("edge", "clamp"),
                   "rects": "\n".join(f"{r['x']}, {r['y']}, {r['w']}, {r['h']}" for r in rects)}
        initial.update({key: params[key] for key in ("start", "end") if params.get(key) is not None})
        return initial

    def reused_ids(self):
        return [self.initial["video_file"]] if self.initial.get("video_file") else []

    def param_fields(self):
        mapping = super().param_fields()
        mapping.pop("video_file", None)
        return mapping

    def to_params(self):
        data = self.cleaned_data
        params = {"rects": data["rects"], "method": data["method"], "edge": data["edge"]}
        if data.get("video_file") and not data.get("video"):
            params["files"] = [data["video_file"]]
        for key in ("start", "end"):
            if data.get(key) is not None:
                params[key] = data[key]
        return params


class MergeForm(TaskForm):
    kind = "merge"

    videos = MultipleFileField(
        label=_("Videos"), help_text=_("2 to 50 videos, joined in the order shown; reorder them before starting."),
        widget=MultipleFileInput(attrs={"multiple": True, "data-orderable": ""}),
    )
    size = forms.RegexField(
        label=_("Size"), required=False, regex=r"^\d{2,5}x\d{2,5}$",
        widget=forms.TextInput(attrs={"placeholder": "1280x720"}),
        help_text=_("Width x height of the result; empty: the first video's size."),
        error_messages={"invalid": _("Write the size as width x height, e.g. 1280x720.")},
    )
    fps = forms.FloatField(label=_("Frame rate"), required=False, min_value=1, max_value=120,
                           help_text=_("Frames per second; empty: the first video's."))
    mode = forms.ChoiceField(
        label=_("How to join"), initial="auto",
        choices=[("auto", _("Copy without re-encoding when the videos match")), ("reencode", _("Always re-encode"))],
    )
    # A copy of a task: the ids of its videos, used again unless other videos are chosen.
    video_files = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.data.get(self.add_prefix("video_files")):
            self.fields["videos"].required = False

    def initial_for(self, params):
        files = params.get("files")
        if not set(params) <= MERGE_PARAMS or not isinstance(files, list) or not files \
                or not all(isinstance(f, str) for f in files):
            return None
        initial = {"video_files": " ".join(files), "mode": params.get("mode", "auto")}
        initial.update({key: params[key] for key in ("size", "fps") if params.get(key)})
        return initial

    def reused_ids(self):
        return (self.initial.get("video_files") or "").split()

    def param_fields(self):
        mapping = super().param_fields()
        mapping.pop("video_files", None)
        return mapping

    def to_params(self):
        data = self.cleaned_data
        params = {"mode": data["mode"]}
        if data.get("video_files") and not data.get("videos"):
            params["files"] = data["video_files"].split()
        if data.get("size"):
            params["size"] = data["size"]
        if data.get("fps"):
            params["fps"] = data["fps"]
        return params
