"""Test settings: crm.settings in production mode (DEBUG off), with test-only relaxations.

The environment decides the services exactly as in production: with DATABASE_URL and
REDIS_URL set the suite runs on PostgreSQL and Redis, otherwise on the embedded defaults.
"""

import os
from pathlib import Path

_root = Path(__file__).resolve().parent.parent
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-" + "x" * 40)
# The test client speaks plain HTTP; production-mode security is tested on its own
# (tests/crm/test_security.py runs crm.settings with its real defaults).
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SECURE_COOKIES", "false")
os.environ.setdefault("SECURE_HSTS_SECONDS", "0")
os.environ.setdefault("DATA_DIR", str(_root / ".run" / "test"))

from crm.settings import *  # noqa: E402,F403
from crm.settings import REDIS_URL  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
if not REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
WHITENOISE_USE_FINDERS = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # One file per test run, so two runs (or a run and `make run`) never share it.
    DATABASES["default"]["TEST"]["NAME"] = str(  # noqa: F405
        Path(os.environ["DATA_DIR"]) / f"test-crm-{os.getpid()}.sqlite3"
    )
