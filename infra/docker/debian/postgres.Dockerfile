# PostgreSQL from Debian's packages, for machines that cannot pull the official image: the same
# contract as postgres:16 for what compose uses (POSTGRES_USER, POSTGRES_PASSWORD, PGDATA, the
# scripts of /docker-entrypoint-initdb.d run once on an empty data folder, pg_isready).
# Built by make images (BASE=debian-local) on the Debian-made base.
ARG BASE=mlops-python:3.11-bookworm
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 && rm -rf /var/lib/apt/lists/*
COPY infra/docker/debian/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
RUN mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
CMD ["postgres"]
