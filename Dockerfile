# monitor: the daemon in a container. Store on the /data volume; watchlist baked in
# at /etc/monitor/watchlist.yaml (mount your own over it, or set MONITOR_WATCHLIST).
# JavaScript pages are rendered by Debian's Chromium, driven by Playwright (the
# `browser` extra); Chromium's own sandbox cannot work under Docker's default seccomp
# profile, so it is off (MONITOR_CHROMIUM_SANDBOX=0): the container, a non-root user
# and a throwaway browser context per page are the isolation (see README, Docker).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MONITOR_DB=sqlite:////data/monitor.db \
    MONITOR_WATCHLIST=/etc/monitor/watchlist.yaml \
    MONITOR_LOG_FORMAT=json \
    MONITOR_CHROMIUM=/usr/bin/chromium \
    MONITOR_CHROMIUM_SANDBOX=0

RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin monitor \
    && mkdir -p /data /etc/monitor && chown monitor:monitor /data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install --no-cache-dir '.[postgres,browser]' && rm -rf /src
COPY monitor/data/watchlist.yaml /etc/monitor/watchlist.yaml

WORKDIR /data
USER monitor
VOLUME ["/data"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=60s --timeout=10s --start-period=60s --retries=3 CMD ["monitor", "health"]
ENTRYPOINT ["monitor"]
CMD ["run"]
