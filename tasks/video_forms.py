"""Page forms of the video kinds (the contract is in tasks/forms.py). Drawing the boxes on a
preview frame is a later enhancement of the watermark form; the numbers work today."""

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from tasks.forms import MultipleFileField, TaskForm

BOX_RE = re.compile(r"^\s*(-?\d+)\s*[,;\s]\s*(-?\d+)\s*[,;\s]\s*(-?\d+)\s*[,;\s]\s*(-?\d+)\s*$")


class WatermarkForm(TaskForm):
    kind = "watermark"

    video = forms.FileField(label=_("Video"), help_text=_("The video to clean; it is uploaded when the task starts."))
    rects = forms.CharField(
        label=_("Logo boxes"), widget=forms.Textarea(attrs={"rows": 3, "placeholder": "20, 20, 160, 60"}),
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

    def clean_rects(self):
        boxes = []
        for number, line in enumerate(self.cleaned_data["rects"].splitlines(), start=1):
            if not line.strip():
                continue
            match = BOX_RE.match(line)
            if not match:
                raise forms.ValidationError(_("Line %(n)s is not four whole numbers (x, y, width, height).")
                                            % {"n": number})
            x, y, w, h = (int(v) for v in match.groups())
            boxes.append({"x": x, "y": y, "w": w, "h": h})
        if not boxes:
            raise forms.ValidationError(_("Enter at least one box."))
        return boxes

    def to_params(self):
        data = self.cleaned_data
        params = {"rects": data["rects"], "method": data["method"], "edge": data["edge"]}
        for key in ("start", "end"):
            if data.get(key) is not None:
                params[key] = data[key]
        return params


class MergeForm(TaskForm):
    kind = "merge"

    videos = MultipleFileField(label=_("Videos"), help_text=_("2 to 50 videos, joined in the order you pick them."))
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

    def to_params(self):
        data = self.cleaned_data
        params = {"mode": data["mode"]}
        if data.get("size"):
            params["size"] = data["size"]
        if data.get("fps"):
            params["fps"] = data["fps"]
        return params
