# syntax=docker/dockerfile:1
#
# fleetpulse application images, one per component, chosen by the COMPONENT build argument:
#
#   COMPONENT   runs                                             installs
#   dispatcher  python -m alerting run      (fleetpulse alerts)      fleetpulse[dispatcher]
#   gateway     python -m ws_gateway run    (fleetpulse gateway)     fleetpulse[gateway]
#   simulator   python -m simulator simulate (fleetpulse simulate)   fleetpulse[simulator]
#   exporter    python -m fleetpulse.exporter (fleetpulse exporter)  fleetpulse[exporter]
#
# Each image holds the base dependencies and its component's extra only (pyproject.toml), so
# the dispatcher, gateway and exporter images carry no PyFlink; tests/docker/test_install_sets.py checks
# that each extra covers what its component imports. Build context: the repository root.
#
#   docker build -f docker/app.Dockerfile --build-arg COMPONENT=gateway -t fleetpulse-gateway .

# -- the map page's vendor assets (Leaflet, pinned by ws_gateway/web/package-lock.json) ---------
FROM node:22-slim AS map-assets
WORKDIR /web
COPY ws_gateway/web/package.json ws_gateway/web/package-lock.json ./
RUN npm ci --no-audit --no-fund \
    && test -f node_modules/leaflet/dist/leaflet.js

# -- the application -----------------------------------------------------------------------------
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# dispatcher, gateway, simulator or exporter; no default: an image is always built for one component.
ARG COMPONENT
RUN case "${COMPONENT}" in \
      dispatcher|gateway|simulator|exporter) ;; \
      *) echo "build with --build-arg COMPONENT=dispatcher|gateway|simulator|exporter (got '${COMPONENT}')" >&2; exit 1 ;; \
    esac

WORKDIR /opt/fleetpulse

# Dependencies first (this layer survives source changes): the [project] dependencies and the
# component's extra, listed by docker/requirements.py from pyproject.toml.
COPY pyproject.toml ./
COPY docker/requirements.py ./docker/requirements.py
RUN python docker/requirements.py "${COMPONENT}" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY fleetpulse ./fleetpulse
COPY flink_jobs ./flink_jobs
COPY udfs ./udfs
COPY alerting ./alerting
COPY ws_gateway ./ws_gateway
COPY simulator ./simulator
COPY bench ./bench
# The gateway serves these from its package; without them it would need npm at start-up.
COPY --from=map-assets /web/node_modules/leaflet/dist/leaflet.js /web/node_modules/leaflet/dist/leaflet.css ./ws_gateway/static/vendor/
COPY --from=map-assets /web/node_modules/leaflet/dist/images/ ./ws_gateway/static/vendor/images/
# Then a smoke test: the component's entry points import with only its extra installed.
RUN pip install --no-deps . \
    && cd / && python -c "from ws_gateway.build_assets import assets_ready, VENDOR_DIR; assert assets_ready(), VENDOR_DIR" \
    && case "${COMPONENT}" in \
         dispatcher) python -m alerting --help > /dev/null && fleetpulse alerts --help > /dev/null ;; \
         gateway) python -m ws_gateway --help > /dev/null && fleetpulse gateway --help > /dev/null ;; \
         simulator) python -m simulator --help > /dev/null && fleetpulse simulate --help > /dev/null ;; \
         exporter) python -m fleetpulse.exporter --help > /dev/null && fleetpulse exporter --help > /dev/null ;; \
       esac

# The dispatcher's routing configuration: the packaged demo configuration (receivers and secrets
# from FLEETPULSE_WEBHOOK_* variables). Mount your own file over it in production.
COPY alerting/default_config.yaml /etc/fleetpulse/alerting.yaml

RUN useradd --system --uid 10001 --home-dir /var/lib/fleetpulse --create-home fleetpulse \
    && mkdir -p /var/lib/fleetpulse/alerting \
    && chown -R fleetpulse:fleetpulse /var/lib/fleetpulse \
    && rm -rf /opt/fleetpulse

# Not the source folder: `python -m` puts the working directory first on sys.path.
WORKDIR /var/lib/fleetpulse
USER fleetpulse
EXPOSE 8765 9100
