"""A PostgreSQL schema of one test's or benchmark's own, so runs sharing a server never collide."""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

from sqlalchemy import create_engine, text

from handlers.store import normalize_url


@contextlib.contextmanager
def postgres_schema(base: str, prefix: str = "test_logs") -> Iterator[str]:
    """Create an empty schema on the server at `base`; yield a store URL whose search_path is it;
    drop it (with everything in it) afterwards."""
    base = normalize_url(base)
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
