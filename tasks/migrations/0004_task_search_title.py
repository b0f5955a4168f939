import unicodedata

from django.db import migrations, models


def fill(apps, schema_editor):
    """The search form of every existing title (tasks.models.search_form, as it is at this migration)."""
    Task = apps.get_model("tasks", "Task")
    batch = []
    for task in Task.objects.exclude(title="").only("pk", "title").iterator(chunk_size=2000):
        task.search_title = unicodedata.normalize("NFKC", task.title).lower()
        batch.append(task)
        if len(batch) == 2000:
            Task.objects.bulk_update(batch, ["search_title"])
            batch = []
    Task.objects.bulk_update(batch, ["search_title"])


class Migration(migrations.Migration):

    dependencies = [
        ("tasks", "0003_countdown_translations"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="search_title",
            field=models.CharField(blank=True, editable=False, max_length=800),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
