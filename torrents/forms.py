"""The calibration kind's new-task form (see tasks/forms.py for the contract)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from tasks.forms import TaskForm, as_lines
from tasks.models import TaskKind
from torrents.refs import MAX_ENTRIES


def calibration_form():
    """A TaskForm: the hashes or magnet links, one per line, and the connection when several are enabled."""
    from torrents.models import QbittorrentConnection

    enabled = QbittorrentConnection.objects.filter(enabled=True).order_by("name")
    connections = list(enabled.values_list("name", flat=True))
    if not connections:
        return None

    class CalibrationForm(TaskForm):
        hashes = forms.CharField(
            label=_("Info hashes or magnet links"), widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
            help_text=_("One per line, up to %(max)s: 40- or 64-character info hashes, or magnet links (which let "
                        "qBittorrent fetch the file list of a torrent it does not have).") % {"max": MAX_ENTRIES},
        )

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if len(connections) > 1:
                self.fields["connection"] = forms.ChoiceField(
                    label=_("qBittorrent"), choices=[(name, name) for name in connections], initial=connections[0])

        def initial_for(self, params):
            if params.get("connection_name") not in connections:
                return None  # that qBittorrent is gone or disabled
            initial = {"hashes": as_lines(params.get("hashes", []))}
            if "connection" in self.fields:
                initial["connection"] = params["connection_name"]
            return initial

        def to_params(self):
            params = {"hashes": self.cleaned_data["hashes"]}
            if self.cleaned_data.get("connection"):
                params["connection"] = self.cleaned_data["connection"]
            return params

    CalibrationForm.kind = TaskKind.CALIBRATION.value
    return CalibrationForm
