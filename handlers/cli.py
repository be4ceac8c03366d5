"""Command-line tools under `flask --app handlers ...`."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the kit's click command groups on the app."""
