# shortage_watch: the daemon in a small image.
#   docker build -t shortage-watch .
#   docker run -v sw-var:/app/var -v "$PWD/config:/app/config" shortage-watch            # the daemon
#   docker run ... shortage-watch db upgrade                                              # any command
# PID 1 is tini, so SIGTERM from `docker stop` reaches the daemon, which finishes its
# current transaction, releases its leases and exits 0 well within docker's 10 s.
FROM python:3.11-slim

ARG UID=10001
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid "${UID}" shortage-watch \
    && useradd --uid "${UID}" --gid "${UID}" --home-dir /app --no-create-home --shell /usr/sbin/nologin shortage-watch

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-compile . && rm -rf ./src ./build

# The working example settings, escalation policy, sample directory and calendar
# overrides; mount your own over /app/config.
COPY config ./config
RUN mkdir -p /app/var && chown -R shortage-watch:shortage-watch /app/var

USER ${UID}:${UID}
VOLUME ["/app/var", "/app/config"]
# Only used when daemon.http_enabled = true and daemon.http_host = "0.0.0.0".
EXPOSE 9464

# Healthy: database reachable with a current schema, a fresh heartbeat from a replica on
# this host (the container), no source failing past the limit, no dead alerts.
HEALTHCHECK --interval=60s --timeout=15s --start-period=60s --retries=3 \
    CMD ["shortage-watch", "health", "--local"]

ENTRYPOINT ["/usr/bin/tini", "--", "shortage-watch"]
CMD ["run"]
