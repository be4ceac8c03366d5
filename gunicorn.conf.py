"""gunicorn settings for the kit (`gunicorn -c gunicorn.conf.py "handlers:create_app()"`).

Webhook handlers spend most of their time waiting on the network (the translator, the database),
so each worker runs several threads (gthread): a slow translation holds one thread, not a process.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) * 2))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "16"))
# Above the longest handler budget: the assistant gives up after 30 s at most, and the kit's own
# deadlines (TRANSLATION_TIMEOUT < 30 s) end a request well before this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "40"))
graceful_timeout = 30
keepalive = 75
# Load the app (settings, language profiles, models) once in the master, before forking.
preload_app = True
# The kit writes one JSON line per request itself; gunicorn's access log would repeat it.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Forward the scheme/host set by the platform's TLS-terminating router.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
