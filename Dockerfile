# tradeloop service image: `tradeloop serve --config /config/loop.toml` (see README: "Run it as
# a service"). Two stages: the build stage installs the package and its pinned dependencies
# into a virtualenv; the runtime stage copies only that virtualenv and runs as a non-root user.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/tradeloop
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY src ./src
COPY samples ./samples
# the core plus the API server and the live extras (Redis bus, PostgreSQL state, alerts)
RUN /opt/tradeloop/bin/pip install -c constraints.txt '.[serve,live]'

FROM python:3.11-slim AS runtime
ENV PATH=/opt/tradeloop/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TRADELOOP_STATE_URL=/data/state.db \
    TRADELOOP_ANALYTICS_PATH=/data/analytics.duckdb
RUN useradd --system --uid 10001 --home-dir /data --create-home tradeloop
COPY --from=build /opt/tradeloop /opt/tradeloop
COPY deploy/loop.toml /config/loop.toml
USER tradeloop
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
# SIGTERM stops the engine after the event in flight, with its state saved
STOPSIGNAL SIGTERM
CMD ["tradeloop", "serve", "--config", "/config/loop.toml", "--host", "0.0.0.0", "--port", "8000"]
