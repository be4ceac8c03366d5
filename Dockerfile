# syntax=docker/dockerfile:1
# The kit as a container: slim Python, a non-root user, gunicorn with the project's settings.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8080

WORKDIR /app
COPY requirements.txt .
# The lock pins every package with its hashes: the image installs exactly what CI tested.
RUN pip install --no-cache-dir --require-hashes -r requirements.txt

COPY handlers/ handlers/
COPY server/ server/

# Load the language detectors once at build time: a broken install fails the build, not the
# first request. (gunicorn also preloads the app before forking, so workers share them.) The
# session file it creates is removed: instance/ must be the unprivileged user's to create in.
RUN python -c "from handlers import create_app; create_app({'DATABASE_URL': 'sqlite:///:memory:', 'SESSION_MEMORY_PATH': 'build-sessions.sqlite3'})" \
    && rm -f build-sessions.sqlite3*

RUN useradd --create-home --uid 10001 kit \
    && mkdir -p /app/instance \
    && chown kit:kit /app/instance
USER 10001:10001

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=2)"]

# gunicorn with server/gunicorn_conf.py, once the server settings are checked (server/__main__.py).
CMD ["python", "-m", "server"]
