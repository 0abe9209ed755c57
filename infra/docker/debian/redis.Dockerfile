# Redis from Debian's packages (7.0), for machines that cannot pull the official image: compose gives
# the command (redis-server with its password and append-only file); the data lives in /data.
# Built by make images (BASE=debian-local) on the Debian-made base.
ARG BASE=mlops-python:3.11-bookworm
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
