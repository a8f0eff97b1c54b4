"""A first version for each job that existed before versions were recorded, so that its next
change has a version to differ from and its history starts with what it was."""

from django.db import migrations
from django.db.models import OuterRef, Subquery

BATCH = 1000
BASELINE = "Recorded when job versions began."
# The versioned fields when this migration was written (jobs.models.VERSIONED_FIELDS then).
FIELDS = (
    "id", "name", "description", "kind", "trigger", "cron", "interval_seconds", "run_at", "timezone",
    "url", "method", "headers", "body", "follow_redirects", "handler", "handler_kwargs", "command",
    "timeout_seconds", "max_retries", "retry_backoff_seconds", "concurrency_policy", "max_concurrent",
    "misfire_grace_seconds",
)  # fmt: skip


def record_baseline(apps, schema_editor):
    job_model = apps.get_model("jobs", "Job")
    version_model = apps.get_model("jobs", "JobVersion")
    batch = []
    for job in job_model.objects.order_by("pk").iterator(chunk_size=BATCH):
        definition = {name: getattr(job, name) for name in FIELDS}
        definition["run_at"] = job.run_at.isoformat() if job.run_at else None
        batch.append(
            version_model(
                job_id=job.pk,
                number=1,
                definition=definition,
                changed_fields=list(FIELDS),
                action="create",
                actor="system",
                source="system",
                reason=BASELINE,
            )  # fmt: skip
        )
        if len(batch) == BATCH:
            version_model.objects.bulk_create(batch)
            batch = []
    version_model.objects.bulk_create(batch)
    # Dated when the job last changed, not now: "changed in the last day" would list every job.
    # (created_at is auto_now_add, which bulk_create fills in with now.)
    last_change = job_model.objects.filter(pk=OuterRef("job_id")).values("updated_at")[:1]
    version_model.objects.filter(number=1, reason=BASELINE).update(created_at=Subquery(last_change))


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0011_jobversion"),
    ]

    operations = [
        migrations.RunPython(record_baseline, migrations.RunPython.noop, elidable=True),
    ]
