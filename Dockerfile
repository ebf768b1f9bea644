# syntax=docker/dockerfile:1
# The rfm-stream worker image: `docker build -t rfm-stream .`
#   docker run --rm -e RFM_KAFKA_BOOTSTRAP=... -e RFM_REDIS_URL=... rfm-stream          (a worker)
#   docker run --rm ... rfm-stream rescore | segments | customer ID | produce FILE     (the CLI)
# Settings are RFM_* environment variables (stream/settings/). Metrics, /healthz and /readyz
# are served on RFM_WEB_PORT (6066).
# The production image is built from stream/ and state/ only: the development code in rfm_dev/
# (demo shop, embedded servers, `rfm-stream demo`) is not in it. The compose demo profile's
# shop is the `shop` stage, that image plus rfm_dev:
#   docker build --target shop -t rfm-stream-shop .   (python -m rfm_dev.shopper)

# ---- build: install the package and its dependencies into a virtualenv
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/rfm-stream
WORKDIR /src
COPY pyproject.toml README.md ./
COPY state/ state/
COPY stream/ stream/
RUN /opt/rfm-stream/bin/pip install . \
    && /opt/rfm-stream/bin/rfm-stream --help >/dev/null \
    && ! /opt/rfm-stream/bin/python -c "import rfm_dev" 2>/dev/null

# ---- run: the virtualenv only, as an unprivileged user
FROM python:3.11-slim AS runtime
ENV PATH=/opt/rfm-stream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RFM_WEB_PORT=6066 \
    RFM_DATA_DIR=/var/lib/rfm-stream
RUN groupadd --system --gid 10001 rfm \
    && useradd --system --uid 10001 --gid rfm --home-dir /var/lib/rfm-stream --create-home \
       --shell /usr/sbin/nologin rfm
COPY --from=build /opt/rfm-stream /opt/rfm-stream
USER rfm:rfm
WORKDIR /var/lib/rfm-stream
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RFM_WEB_PORT', '6066') + '/healthz', timeout=4)"]
ENTRYPOINT ["rfm-stream"]
CMD ["worker"]

# ---- shop: the demo shop for `docker compose --profile demo`; development code, never shipped
FROM runtime AS shop
COPY rfm_dev/ /opt/rfm-dev/rfm_dev/
ENV PYTHONPATH=/opt/rfm-dev
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "rfm_dev.shopper"]
CMD []

# ---- the default target: the production image (`runtime`)
FROM runtime
