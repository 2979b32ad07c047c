"""gunicorn settings for the example portal.

The callout URL carries a secret token in its path, so the access log format
leaves the path out (method, status, size and duration are kept).
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("ACCESS_LOG", "-") or None
access_log_format = '%(h)s "%(m)s" %(s)s %(B)s %(M)sms'
