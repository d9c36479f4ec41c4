"""gunicorn settings shared by every way the web server is started (the image's CMD,
docker-compose.yml, tests/bench/bench_pixel.py): gunicorn reads ./gunicorn.conf.py from its
working directory. Command-line flags still win over what is set here.
"""

from gunicorn.glogging import Logger

# Threads rather than one request at a time per process: a thread waiting on PostgreSQL or
# Redis lets another run, and keep-alive connections (which sync workers refuse) spare mail
# proxies and browsers a TCP handshake per request. Measured with tests/bench/bench_pixel.py,
# which runs the plain Django baseline on the same setup. Workers: --workers/WEB_CONCURRENCY.
worker_class = "gthread"
threads = 4

# Tracking hits that were answered as intended are not written to the access log: each one is
# already an event (with the IP only as a keyed hash), and the log line would keep the visitor's
# raw IP next to the message token, which the tracking deliberately never stores. Formatting
# and writing that line was also a sizeable share of the work of a pixel request. Failed ones
# (4xx/5xx) are still logged.
_QUIET_PREFIXES = ("/t/o/", "/t/c/")
_QUIET_STATUSES = (200, 302)


class TrackingQuietLogger(Logger):
    def access(self, resp, req, environ, request_time):
        if environ.get("PATH_INFO", "").startswith(_QUIET_PREFIXES) and (
            resp.status_code in _QUIET_STATUSES
        ):
            return
        super().access(resp, req, environ, request_time)


logger_class = TrackingQuietLogger
