"""The Heartbeat model moves here from the project package (crontask), its table unchanged.

The table ``crontask_heartbeat`` was made by crontask's 0001_initial and keeps its name and its
rows: this migration adds the model to this app's state only (``db_table`` names the table), and
crontask's 0002 removes it from that app's state. So ``migrate`` on an existing database changes
no table. The model's content type is renamed from crontask to heartbeats, so that its
permissions (and whoever holds them) follow the model instead of staying behind, stale.
"""

from django.db import migrations, models

OLD, NEW = "crontask", "heartbeats"


def rename_content_type(old, new):
    def rename(apps, schema_editor):
        ContentType = apps.get_model("contenttypes", "ContentType")
        db = schema_editor.connection.alias
        if ContentType.objects.using(db).filter(app_label=new, model="heartbeat").exists():
            return  # already there: post_migrate made it, or this ran before
        ContentType.objects.using(db).filter(app_label=old, model="heartbeat").update(app_label=new)

    return rename


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("crontask", "0001_initial"),  # which made the table
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Heartbeat",
                    fields=[
                        ("name", models.CharField(max_length=50, primary_key=True, serialize=False, verbose_name="name")),
                        ("hostname", models.CharField(blank=True, max_length=255, verbose_name="host")),
                        ("pid", models.PositiveIntegerField(blank=True, null=True, verbose_name="process id")),
                        ("seen_at", models.DateTimeField(verbose_name="last seen at")),
                    ],
                    options={
                        "verbose_name": "heartbeat",
                        "verbose_name_plural": "heartbeats",
                        "db_table": "crontask_heartbeat",
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(rename_content_type(OLD, NEW), rename_content_type(NEW, OLD)),
    ]
