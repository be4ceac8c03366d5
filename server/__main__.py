"""`python -m server [APP] [gunicorn options]`: the kit's server, as every platform runs it
(Procfile, Dockerfile, `make run`): gunicorn with server/gunicorn_conf.py, serving
`handlers:create_app()`, or APP (e.g. "examples.custom_step:create_app()").

It is gunicorn, with one thing done first: gunicorn reads WEB_CONCURRENCY itself when it is
imported and dies with a bare ValueError on a value it cannot read, before any configuration of
ours runs. So the server settings are checked here, before gunicorn is imported, and a wrong one
stops the start with one line naming the variable and the fix.
"""

from __future__ import annotations

import sys
from pathlib import Path

from handlers.settings import SettingsError

from .settings import load_server_settings

CONFIG = Path(__file__).resolve().parent / "gunicorn_conf.py"
APP = "handlers:create_app()"


def main(argv: list[str] | None = None) -> None:
    """Check the server settings, then hand over to gunicorn (which does not return)."""
    args = list(sys.argv[1:] if argv is None else argv)
    app = args.pop(0) if args and not args[0].startswith("-") else APP
    try:
        load_server_settings()
    except SettingsError as exc:
        raise SystemExit(f"settings error: {exc}") from None
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", "-c", str(CONFIG), *args, app]
    run()


if __name__ == "__main__":
    main()
