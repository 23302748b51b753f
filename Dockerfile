# Clapper: `clapper run` (bot + scheduler + delivery worker) as a non-root user.
# Build: docker build -t clapper .   Run: docker run --env-file .env -v clapper-data:/data clapper
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # SQLite in the data volume unless DATABASE_URL points at PostgreSQL (docker-compose.yml does).
    DATABASE_URL=sqlite:////data/clapper.db \
    # Inside a container the web pages must listen on every interface to be published.
    WEB_HOST=0.0.0.0 \
    LOG_JSON=true

RUN groupadd --system --gid 10001 clapper \
 && useradd --system --uid 10001 --gid clapper --home-dir /app --shell /usr/sbin/nologin clapper \
 && mkdir -p /data && chown clapper:clapper /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY digests ./digests
COPY bot ./bot
COPY templates ./templates
# Editable install on purpose: templates/ is found next to the package (digests/config.py), not in
# site-packages. psycopg[binary] and the other wheels need no compiler on slim.
RUN pip install -e . && clapper --help > /dev/null

USER clapper
VOLUME ["/data"]
EXPOSE 8000

# Exit 1 when the queue or the ingest looks stuck (see `clapper status --help`).
HEALTHCHECK --interval=60s --timeout=30s --start-period=120s --retries=3 CMD ["clapper", "status"]

# Exec form: clapper is PID 1 and gets SIGTERM itself; it finishes in-flight sends before exiting.
STOPSIGNAL SIGTERM
CMD ["clapper", "run"]
