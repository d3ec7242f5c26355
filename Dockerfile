# A Socket Mode bot with the telemetry plugin, as a small image: the first stage builds
# the wheel, the second installs that wheel alone (its dependencies come from PyPI).
#
#   docker build -t slackonos-bot .
#   mkdir -p config && sudo chown 10001:10001 config && chmod 700 config
#   docker run -d --name slackonos-bot --restart on-failure \
#       -e SLACK_BOT_TOKEN -e SLACK_APP_TOKEN -v "$PWD/config:/config" slackonos-bot
#
# Without SLACK_BOT_TOKEN and SLACK_APP_TOKEN the container prints one line on stderr and
# exits 2 (it never falls back to the console demo). The config folder holds the instance
# ID and the outbox: keep it on a volume, writable by the bot's user (10001) alone.

FROM python:3.11-slim AS build
WORKDIR /src
# Only what building the wheel reads; .dockerignore keeps everything else out of the context.
COPY pyproject.toml README.md LICENSE ./
COPY slackonos_telemetry ./slackonos_telemetry
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin slackonos \
    && mkdir /config \
    && chown 10001:10001 /config \
    && chmod 700 /config
ENV SLACKONOS_CONFIG=/config/config.json
VOLUME ["/config"]
WORKDIR /config
# Numeric, so a runtime that refuses root (Kubernetes runAsNonRoot) can check it.
USER 10001:10001
# The plugin sends `shutdown` within TELEMETRY_SHUTDOWN_TIMEOUT (2 s) of SIGTERM, well
# inside `docker stop`'s 10 s.
STOPSIGNAL SIGTERM
CMD ["slackonos-telemetry", "run", "--socket"]
