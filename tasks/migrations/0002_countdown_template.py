from django.db import migrations


def add_countdown(apps, schema_editor):
    CommandTemplate = apps.get_model("tasks", "CommandTemplate")
    CommandTemplate.objects.get_or_create(
        name="countdown",
        defaults={
            "description": "Demo: counts down, reporting progress (harmless; disable it in production if unwanted).",
            "argv": ["{python}", "{base_dir}/tasks/tools/countdown.py", "--seconds", "{seconds}",
                     ["--fail-at", "{fail_at}"]],
            "param_schema": [
                {"name": "seconds", "type": "integer", "default": 10, "min": 1, "max": 600},
                {"name": "fail_at", "type": "integer", "min": 0, "max": 600},
            ],
            "default_timeout": 900,
            "allow_everyone": True,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("tasks", "0001_initial")]
    operations = [migrations.RunPython(add_countdown, migrations.RunPython.noop)]
