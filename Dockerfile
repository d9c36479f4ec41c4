# One image for every process of the CRM: gunicorn (default CMD), the Celery worker, Celery
# beat and migrations; docker-compose.yml picks the command per service. All configuration comes
# from the environment at run time (crm/settings.py); nothing secret is baked in.
FROM python:3.11-slim

# DATA_DIR: the settings' file-backed fallbacks (SQLite, broker folders, cache, beat schedule)
# belong on a volume, not next to the code, which the app user cannot write.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data

WORKDIR /app

# Dependencies before the code, so this layer is rebuilt only when requirements.txt changes.
# Every pin ships a binary wheel (psycopg2-binary, numpy, pandas): no compiler in the image.
COPY requirements.txt .
RUN pip install -r requirements.txt

# A fixed unprivileged user. /data is created here and owned by it because a new named volume
# mounted on /data copies this directory's ownership.
RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid app --create-home --shell /usr/sbin/nologin app \
    && mkdir /data \
    && chown app:app /data

# The code stays root-owned: the app user can run it but not modify it.
COPY . .

# Compiled catalogues (*.mo) and collected static files are build artefacts, not in git.
# Babel compiles the .po files without GNU gettext. collectstatic only has to import the
# settings, which refuse to load without SECRET_KEY when DEBUG is off: the throwaway key and
# SQLite URL live for this one command and are not kept in the image.
RUN pybabel compile -d locale -D django \
    && SECRET_KEY=build-only DATABASE_URL=sqlite:////tmp/build.sqlite3 \
       python manage.py collectstatic --noinput

USER app
EXPOSE 8000

# No HEALTHCHECK here: the same image runs the worker and beat, which serve no HTTP;
# docker-compose.yml gives each service its own.
# sh expands WEB_CONCURRENCY at run time; exec makes gunicorn PID 1 so it receives SIGTERM.
CMD ["sh", "-c", "exec gunicorn crm.wsgi:application --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-3} --access-logfile -"]
