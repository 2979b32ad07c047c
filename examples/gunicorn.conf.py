"""gunicorn settings for the example portal.

The callout URL carries a secret token in its path, so the access log format
leaves the path out (method, status, size and duration are kept).
"""

import os
from pathlib import Path
from typing import Any

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG", "-") or None
access_log_format = '%(h)s "%(m)s" %(s)s %(B)s %(M)sms'

# -- Prometheus metrics ({prefix}/metrics) under several worker processes -----------------
#
# Each gunicorn worker counts its own callouts. To have {prefix}/metrics report the
# sum over all of them, start gunicorn with PROMETHEUS_MULTIPROC_DIR set to a
# directory the app can write (e.g. /run/portal-metrics, on tmpfs): prometheus-client
# then keeps the counters in files there and adds them up at each scrape. The
# queue, dead-letter and worker gauges are read from Redis at scrape time and are
# never added up. Give the separate `autotask-ilert worker` service no
# PROMETHEUS_MULTIPROC_DIR (or one of its own) and scrape it on --metrics-port.


def on_starting(server: object) -> None:
    """Start from an empty metrics directory: files of an earlier run would be added in too."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        for stale in Path(directory).glob("*.db"):
            stale.unlink()


def child_exit(server: object, worker: Any) -> None:
    """A worker process ended (restart, max_requests, crash): prometheus-client drops its
    live gauges, while its counters stay counted."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
