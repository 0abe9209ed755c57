# Prometheus from Debian's packages, for machines that cannot pull prom/prometheus: compose gives the
# flags (its config folder and storage path); wget answers the healthcheck as in the official image.
# Built by make images (BASE=debian-local) on the Debian-made base.
ARG BASE=mlops-python:3.11-bookworm
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends prometheus wget \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
