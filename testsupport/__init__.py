"""What the tests and the benchmarks both run: the LibreTranslate stand-in (libre_server), a
PostgreSQL schema of a run's own (pg_schema), the kit or the bare Flask echo under a real gunicorn
(gunicorn_process, echo_app). Neither tests/ nor bench/ is imported by the other."""
