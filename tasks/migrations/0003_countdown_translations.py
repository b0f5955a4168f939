"""The shipped `countdown` template in English and Chinese: its description and its parameter
labels and help. A row the admin has edited since is left as it is."""

from django.db import migrations, models

import tasks.models

SHIPPED_DESCRIPTION = "Demo: counts down, reporting progress (harmless; disable it in production if unwanted)."
SHIPPED_SCHEMA = [
    {"name": "seconds", "type": "integer", "default": 10, "min": 1, "max": 600},
    {"name": "fail_at", "type": "integer", "min": 0, "max": 600},
]
DESCRIPTION_ZH = "演示：倒计时并报告进度（无害；生产环境中如不需要可停用）。"
TRANSLATED_SCHEMA = [
    {**SHIPPED_SCHEMA[0], "label": {"en": "Seconds", "zh-hans": "秒数"},
     "help": {"en": "How long to count down.", "zh-hans": "倒计时的时长。"}},
    {**SHIPPED_SCHEMA[1], "label": {"en": "Fail at second", "zh-hans": "在第几秒失败"},
     "help": {"en": "Optional: stop with an error at this second, to see how a failure looks.",
              "zh-hans": "可选：在这一秒以错误结束，用来查看失败时的样子。"}},
]


def translate_countdown(apps, schema_editor):
    CommandTemplate = apps.get_model("tasks", "CommandTemplate")
    for template in CommandTemplate.objects.filter(name="countdown"):
        if template.description == SHIPPED_DESCRIPTION and template.param_schema == SHIPPED_SCHEMA:
            template.description_translations = {"zh-hans": DESCRIPTION_ZH}
            template.param_schema = TRANSLATED_SCHEMA
            template.save(update_fields=["description_translations", "param_schema"])


def untranslate_countdown(apps, schema_editor):
    CommandTemplate = apps.get_model("tasks", "CommandTemplate")
    for template in CommandTemplate.objects.filter(name="countdown"):
        if template.param_schema == TRANSLATED_SCHEMA:
            template.param_schema = SHIPPED_SCHEMA
            template.save(update_fields=["param_schema"])


class Migration(migrations.Migration):
    dependencies = [("tasks", "0002_countdown_template")]
    operations = [
        migrations.AddField(
            model_name="commandtemplate",
            name="description_translations",
            field=models.JSONField(
                blank=True, default=dict, validators=[tasks.models.validate_translations],
                verbose_name="description in other languages",
                help_text='{language code: text}, e.g. {"zh-hans": "…"}; other languages see the description above. '
                          "Parameter labels and help take the same form in the parameters.",
            ),
        ),
        migrations.RunPython(translate_countdown, untranslate_countdown),
    ]
