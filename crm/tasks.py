from celery import shared_task

from crm.models import Heartbeat


@shared_task(acks_late=True, ignore_result=True)
def heartbeat(name: str = "beat") -> None:
    """Scheduled by beat every minute; /healthz reads how long ago it last ran."""
    Heartbeat.beat(name)
