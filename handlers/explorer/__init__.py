"""The log explorer at /explorer/: the stored conversations as pages (overview, sessions, one
session's transcript), for the people who run an assistant.

Off unless configured (EXPLORER_USERNAME + EXPLORER_PASSWORD, or EXPLORER_AUTH=none on a local
machine); `create_app` imports this package only then. Every page, asset and error of the
blueprint is behind the credentials, since the pages show customers' messages. Server-rendered
Jinja and SVG: no JavaScript, nothing loaded from elsewhere (views.py sets a strict
Content-Security-Policy). The numbers come from the log store's query layer
(handlers/store/reports.py), the one `flask logs stats` uses.
"""

from .views import bp

__all__ = ["bp"]
