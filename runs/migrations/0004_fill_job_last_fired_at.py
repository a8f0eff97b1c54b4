# Job.last_fired_at of the one-off (date) jobs from their runs: the latest scheduled fire. It is
# what resuming a paused one-off reads to tell whether it had fired, as the runs were read before.

from django.db import migrations
from django.db.models import Max, OuterRef, Subquery


def fill_last_fired_at(apps, schema_editor):
    job_model = apps.get_model("jobs", "Job")
    run_model = apps.get_model("runs", "Run")
    latest = (
        run_model.objects.filter(job_id=OuterRef("pk"), trigger="scheduled")
        .order_by()
        .values("job_id")
        .annotate(latest=Max("scheduled_for"))
        .values("latest")
    )
    job_model.objects.filter(trigger="date").update(last_fired_at=Subquery(latest))


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0007_job_last_fired_at'),
        ('runs', '0003_outbox'),
    ]

    operations = [
        migrations.RunPython(fill_last_fired_at, migrations.RunPython.noop, elidable=True),
    ]
