#!/usr/bin/env bash
# The servers the test suite starts as throwaway processes, from Debian's packages: redis-server,
# prometheus (and promtool), prometheus-pushgateway and PostgreSQL; and the browser of the UI checks,
# chromium (Playwright drives it over its DevTools protocol and downloads no browser); and Docker's
# client (docker.io) and Compose (Debian's docker-compose where `docker compose` is missing), whose
# refusals `make images` and `make up` turn into one line each. Run by
# `make test` before the suite. As root, missing ones are installed with apt-get and the services
# Debian starts on install are stopped again (the tests run their own, on free ports); as another
# user, it stops at once with the one command that installs them, instead of failing deep into the run.
set -euo pipefail

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
command -v prometheus-pushgateway >/dev/null 2>&1 || packages+=(prometheus-pushgateway)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || packages+=(prometheus)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || packages+=(postgresql)
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v docker >/dev/null 2>&1 || packages+=(docker.io)
{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; } || packages+=(docker-compose)
[ "${#packages[@]}" -eq 0 ] && exit 0

install="apt-get install -y --no-install-recommends ${packages[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "the tests need servers that are not installed: ${packages[*]}" >&2
    echo "install them (Debian), then run make test again:" >&2
    echo "    sudo apt-get update && sudo $install" >&2
    exit 1
fi
echo "installing the test servers: ${packages[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive $install -qq
# Debian starts the packaged services; the tests run their own throwaway servers.
for service in redis-server prometheus-pushgateway prometheus postgresql docker; do
    service "$service" stop >/dev/null 2>&1 || true
done
