# monitor: the daemon in a container. Store on the /data volume; watchlist baked in
# at /etc/monitor/watchlist.yaml (mount your own over it, or set MONITOR_WATCHLIST).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MONITOR_DB=sqlite:////data/monitor.db \
    MONITOR_WATCHLIST=/etc/monitor/watchlist.yaml \
    MONITOR_LOG_FORMAT=json

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin monitor \
    && mkdir -p /data /etc/monitor && chown monitor:monitor /data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install --no-cache-dir '.[postgres]' && rm -rf /src
COPY monitor/data/watchlist.yaml /etc/monitor/watchlist.yaml

WORKDIR /data
USER monitor
VOLUME ["/data"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=60s --timeout=10s --start-period=60s --retries=3 CMD ["monitor", "health"]
ENTRYPOINT ["monitor"]
CMD ["run"]
