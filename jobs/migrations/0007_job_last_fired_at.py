# Job.last_fired_at: the nominal time of the latest fire beat claimed. Filled from the runs table
# for the one-offs by runs' migration 0004 (runs sit above jobs).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0006_job_shown_target'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='last_fired_at',
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name='last fired at'),
        ),
    ]
