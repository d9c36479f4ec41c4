"""Celery tasks of campaigns: thin wrappers around campaigns.sending (work is claimed in the
database, so every task is safe to run twice or at once on several workers)."""

from celery import shared_task

from campaigns import automations, results, sending


@shared_task
def start_campaign_task(campaign_id: int) -> int:
    return sending.launch_campaign(campaign_id=campaign_id)


@shared_task
def send_campaign_task(campaign_id: int) -> int:
    return sending.send_pending(campaign_id=campaign_id)


@shared_task
def tick() -> None:
    """Beat, every few seconds: start due campaigns; start senders where nobody is sending
    (a worker died mid-batch, or a retry's backoff ran out)."""
    for campaign_id in sending.start_due_campaigns():
        start_campaign_task.delay(campaign_id)
    for campaign_id in sending.campaigns_needing_senders():
        sending.kick_sending(campaign_id=campaign_id)


@shared_task
def run_automations() -> dict[int, int]:
    """Beat, every few minutes: evaluate the triggers of active automations whose sending
    hour has come and that were not evaluated yet today (each claimed in the database)."""
    return automations.run_due_triggers()


@shared_task
def refresh_results_summaries() -> int:
    """Beat, hourly: recompute the list's conversions and revenue of campaigns whose figures
    may have moved (campaigns.results.campaigns_needing_summary)."""
    due = results.campaigns_needing_summary()
    for campaign_id in due:
        results.refresh_summary(campaign_id=campaign_id)
    return len(due)
