"""Jobs whose target holds a Feishu (or Lark) robot's webhook: their ``shown_target`` is computed
again, now that ``jobs.secrets.mask_text`` masks the webhook's token (it is searched, so it must
not hold it). Only the jobs that name such a webhook are read."""

from django.db import migrations
from django.db.models import Q

from jobs.secrets import mask_text

BATCH = 1000
HOOK_PATH = "/open-apis/bot/v2/hook/"


def mask_feishu_tokens(apps, schema_editor):
    job_model = apps.get_model("jobs", "Job")
    fields = ("id", "kind", "method", "url", "handler", "command")
    named = Q(url__icontains=HOOK_PATH) | Q(command__icontains=HOOK_PATH)
    batch = []
    for job in job_model.objects.filter(named).only(*fields).order_by("pk").iterator(chunk_size=BATCH):
        target = {"http": f"{job.method} {job.url}", "python": job.handler}.get(job.kind, job.command)
        job.shown_target = mask_text(target)
        batch.append(job)
        if len(batch) == BATCH:
            job_model.objects.bulk_update(batch, ["shown_target"])
            batch = []
    job_model.objects.bulk_update(batch, ["shown_target"])


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0008_mask_slack_webhook_tokens"),
    ]

    operations = [
        migrations.RunPython(mask_feishu_tokens, migrations.RunPython.noop, elidable=True),
    ]
