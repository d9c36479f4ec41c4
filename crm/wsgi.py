import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
application = get_wsgi_application()

# The open pixel and click redirect are answered before Django's middleware stack: see
# campaigns/tracking_wsgi.py (imported after Django is set up, as it reads the settings).
from campaigns.tracking_wsgi import TrackingFastPath  # noqa: E402

application = TrackingFastPath(application)
