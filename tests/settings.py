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
# One folder per test run (SQLite test database, filesystem broker): two runs at once never
# share a database or a queue. Worker processes started by the tests inherit it.
os.environ.setdefault("DATA_DIR", str(_root / ".run" / "test" / str(os.getpid())))

from crm.settings import *  # noqa: E402,F403
from crm.settings import REDIS_URL  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
if not REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
WHITENOISE_USE_FINDERS = True
