"""The server the webhooks run in: gunicorn, as every platform starts it (`python -m server`).

Apart from `handlers/` so that the package a user copies holds webhook code only; `handlers/`
never imports from here.

| module | holds |
|---|---|
| __main__.py | the launcher: the server settings checked, then gunicorn with gunicorn_conf.py |
| gunicorn_conf.py | gunicorn's settings and hooks (the metrics folder's housekeeping) |
| settings.py | the server's settings (PORT, WEB_CONCURRENCY, GUNICORN_*, ...), validated |
| sizing.py | the CPUs and memory the container may use, for the default worker count |
| worker.py | the gthread worker that gives a thread only to a request that has arrived |
"""
