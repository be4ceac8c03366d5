"""The event store of the log webhook, on SQLAlchemy Core (SQLite by default, PostgreSQL when
DATABASE_URL says so)."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine


def default_url(instance_path: str) -> str:
    """A SQLite file in the app's instance folder: works with no setup at all."""
    os.makedirs(instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(instance_path, "events.sqlite3")


class EventStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, pool_pre_ping=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
