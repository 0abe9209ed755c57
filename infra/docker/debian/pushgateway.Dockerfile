# Prometheus' Pushgateway from Debian's packages, for machines that cannot pull prom/pushgateway.
# Built by make images (BASE=debian-local) on the Debian-made base.
ARG BASE=mlops-python:3.11-bookworm
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends prometheus-pushgateway wget \
    && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 9091
ENTRYPOINT ["/usr/bin/prometheus-pushgateway"]
