# Indexes for segment rules on the RFM label and decile of a run (see CustomerScore.Meta).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('segments', '0002_scoringrun_phase_progressed_at'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='customerscore',
            index=models.Index(fields=['run', 'rfm_label'], name='score_run_label_idx'),
        ),
        migrations.AddIndex(
            model_name='customerscore',
            index=models.Index(fields=['run', 'decile'], name='score_run_decile_idx'),
        ),
    ]
