"""The log explorer at /explorer/: the stored conversations as pages (overview, sessions, one
session's transcript), for the people who run an assistant.

Off unless configured (EXPLORER_USERNAME + EXPLORER_PASSWORD, or EXPLORER_AUTH=none on a local
machine); `create_app` imports this package only then. Every request under /explorer/ passes
guard.py first (credentials or a loopback Host, the login throttle, NUL characters) and gets its
security headers, since the pages show customers' messages. Server-rendered Jinja and SVG: no
JavaScript, nothing loaded from elsewhere (a strict Content-Security-Policy). The numbers come
from the log store's query layer (handlers/store/reports.py), the one `flask logs stats` uses.
"""

from flask import Flask

from .throttle import LoginThrottle
from .views import bp

__all__ = ["bp", "init_app"]


def init_app(app: Flask) -> None:
    """Serve the explorer. The login throttle is made here, before gunicorn forks: its counts
    are then shared by every worker."""
    app.extensions["explorer_throttle"] = LoginThrottle()
    app.register_blueprint(bp)
