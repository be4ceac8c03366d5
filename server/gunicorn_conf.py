"""gunicorn settings for the kit (`python -m server`, which runs
`gunicorn -c server/gunicorn_conf.py "handlers:create_app()"` once the server settings are
checked).

Webhook handlers spend most of their time waiting on the network (the translator, the database),
so each worker runs several threads (gthread): a slow translation holds one thread, not a process.
The kit's gthread subclass (server/worker.py) gives a thread only to a request that has fully
arrived, so slow clients cannot hold the threads.
"""

import glob
import os
import shutil
import tempfile

from handlers.settings import SettingsError
from handlers.settings.readers import read_flag
from server.settings import load_server_settings

# Every server setting read and checked at once; a wrong one stops the start with one line naming
# the variable and the fix (SystemExit: gunicorn prints a traceback for any other exception here).
try:
    _server = load_server_settings()
except SettingsError as exc:
    raise SystemExit(f"settings error: {exc}") from None

bind = f"0.0.0.0:{_server.port}"
# Two per CPU the container may use (cgroup quota, CPU affinity; not the host's), no more than
# its memory limit holds (server/sizing.py).
workers = _server.workers
worker_class = "server.worker.RequestDeadlineWorker"
threads = _server.threads
# A client that has not sent its whole request (headers and body) within this many seconds gets a
# 408 and is closed; it never holds a thread meanwhile.
request_read_timeout = _server.request_read_timeout
# Each worker is replaced after about this many requests (jitter so they do not all restart at
# once): a leaked resource cannot live forever. A worker finishes its requests in flight first.
# 0 turns it off.
max_requests = _server.max_requests
max_requests_jitter = _server.max_requests_jitter
# Above the longest handler budget: the assistant gives up after 30 s at most, and the kit's own
# deadlines (TRANSLATION_TIMEOUT < 30 s) end a request well before this.
timeout = _server.timeout
graceful_timeout = 30
keepalive = 75
# Load the app (settings, language profiles, models) once in the master, before forking.
preload_app = True
# The kit writes one JSON line per request itself; gunicorn's access log would repeat it.
accesslog = None
errorlog = "-"
loglevel = _server.log_level.lower()
# Forward the scheme/host set by the platform's TLS-terminating router.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    """gunicorn has no setting for the request read deadline: the kit's worker takes it here."""
    worker.request_read_timeout = request_read_timeout


# METRICS=on: prometheus-client's multiprocess mode, so a scrape of any worker counts them all. It
# reads PROMETHEUS_MULTIPROC_DIR when it is first imported (by the preloaded app, after this file):
# set it here, to a directory of this server's own when the deployment names none.
_own_metrics_dir = None
if read_flag(os.environ, "METRICS", False):
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _own_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = \
            tempfile.mkdtemp(prefix="webhook-metrics-")
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def on_starting(server):
    """Start the metrics from zero: an earlier run's files in the directory would be summed in.
    (Here, once per start, not when the file is read: gunicorn reads it again on a HUP.)"""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        for path in glob.glob(os.path.join(folder, "*.db")) + \
                glob.glob(os.path.join(folder, "*.db.merging")):
            os.remove(path)
        # Imported here, not first in child_exit: that runs in the SIGCHLD handler, and a
        # second worker's exit during the import met a half-imported module (ImportError).
        import handlers.metrics_folder  # noqa: F401
        import prometheus_client.multiprocess  # noqa: F401


# Dead workers whose counter and histogram files are not merged yet (a scrape held the lock).
_unmerged_pids = []


def child_exit(server, worker):
    """A dead worker's live gauges (breaker state, stuck threads) leave the scrape with it, and
    its counters and histograms are merged into the folder's compacted files (one per kind), so
    the folder and the scrape stay small however many workers GUNICORN_MAX_REQUESTS replaced."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    from prometheus_client import multiprocess

    from handlers.metrics_folder import compact

    multiprocess.mark_process_dead(worker.pid)
    _unmerged_pids.append(worker.pid)
    # A new worker with a waiting pid has taken its files over and counts on from their values.
    _unmerged_pids[:] = [pid for pid in _unmerged_pids if pid not in server.WORKERS]
    try:
        if compact(folder, _unmerged_pids):
            _unmerged_pids.clear()
    except Exception as exc:  # the master must go on: the files stay, and are summed as before
        server.log.warning("could not merge dead workers' metric files: %r", exc)


def on_exit(server):
    """The folder this file made for the metrics goes with the server."""
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)
