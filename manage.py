#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mediacraft.settings")
    if sys.argv[1:2] in (["worker"], ["rqworker"], ["taskscheduler"]):
        os.environ.setdefault("MEDIACRAFT_PROCESS", "background")  # see PROCESS in the settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A bad setting: the message names it, and a traceback would only bury it.
        sys.exit(f"ImproperlyConfigured: {exc}")
