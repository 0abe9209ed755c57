#!/usr/bin/env bash
# The compose stack on this machine (make up, make down):
#
#   infra/docker/stack.sh up      build what is missing (make images), start, wait for health, print the UIs
#   infra/docker/stack.sh down    stop and remove the containers; the named volumes stay
#
# Where the registry's images cannot be pulled (BASE=debian-local, or auto when the pull fails), the
# infrastructure runs from images made of Debian's packages (infra/docker/debian/, overrides in
# infra/compose/debian-local.yml): PostgreSQL, Redis, Prometheus and the Pushgateway from Debian, S3
# from moto's server in MinIO's place. Grafana and the StatsD exporter have no Debian package: they
# are left out there (the dashboards stay checked against a real Prometheus by the tests).
# Each refusal (no Docker, no daemon, no compose, no .env, a value missing from it, a port taken) is
# one line naming the fix.
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE="${BASE:-auto}"
ENV_FILE="${ENV_FILE:-.env}"
WAIT_SECONDS="${WAIT_SECONDS:-900}"
fail() { echo "stack: $*" >&2; exit 1; }
action="${1:-}"
case "$action" in up | down) ;; *) fail "usage: $0 up|down" ;; esac

command -v docker >/dev/null || fail "no docker client: install Docker (Debian: apt-get install docker.io)"
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    fail "no Docker Compose: install the compose plugin (Debian: apt-get install docker-compose)"
fi
[ -f "$ENV_FILE" ] || fail "no $ENV_FILE: copy .env.example to .env and set the compose passwords in it"
compose+=(--project-name mlops --project-directory . --env-file "$ENV_FILE" --file docker-compose.yml)

if [ "$action" = up ]; then
    # What compose itself would refuse, said in one line (it reads no daemon for this).
    if ! problem="$("${compose[@]}" config --quiet 2>&1)"; then
        missing="$(printf '%s\n' "$problem" | grep -o 'set [A-Z0-9_]* in \.env' | head -n 1 || true)"
        [ -n "$missing" ] && fail "a value is missing from $ENV_FILE: $missing"
        fail "the compose file does not load: $(printf '%s' "$problem" | tr '\n' ' ')"
    fi
fi

# Published ports (127.0.0.1:PORT:...) that something else holds already, unless it is this stack.
if [ "$action" = up ] && [ -z "$("${compose[@]}" ps --quiet 2>/dev/null || true)" ]; then
    for port in $(sed -n 's/.*"127\.0\.0\.1:\([0-9]*\):.*/\1/p' docker-compose.yml); do
        # SO_REUSEADDR, as servers bind: connections closing on the port (TIME_WAIT) hold nothing.
        python3 -c "import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null \
            || fail "port $port is taken on 127.0.0.1: stop what listens there (ss -ltnp 'sport = :$port'), then make up again"
    done
fi
docker info >/dev/null 2>&1 || fail "no Docker daemon answers: start it (systemctl start docker, or dockerd & as root)"

case "$BASE" in
    official) local_infra="" ;;
    debian-local) local_infra=1 ;;
    auto)
        if docker image inspect postgres:16-bookworm >/dev/null 2>&1 \
            || timeout 120 docker pull --quiet postgres:16-bookworm >/dev/null 2>&1; then
            local_infra=""
        else
            local_infra=1
        fi
        ;;
    *) fail "BASE is auto, official or debian-local, not $BASE" ;;
esac
services=()
if [ -n "$local_infra" ]; then
    compose+=(--file infra/compose/debian-local.yml)
    for service in $("${compose[@]}" config --services); do
        case "$service" in grafana | statsd-exporter) ;; *) services+=("$service") ;; esac
    done
fi

if [ "$action" = down ]; then
    "${compose[@]}" down
    exit 0
fi

images=(airflow mlflow serving)
[ -n "$local_infra" ] && images+=(postgres redis prometheus pushgateway s3)
missing=()
for image in "${images[@]}"; do
    docker image inspect "mlops-$image:local" >/dev/null 2>&1 || missing+=("$image")
done
if [ "${#missing[@]}" -gt 0 ]; then
    BASE="$([ -n "$local_infra" ] && echo debian-local || echo "$BASE")" infra/docker/images.sh "${missing[@]}"
fi

started="$(date +%s)"
"${compose[@]}" up --detach --no-build "${services[@]}"
# Every container with a healthcheck healthy, every one-off job exited 0.
deadline=$((started + WAIT_SECONDS))
while :; do
    waiting=()
    for container in $("${compose[@]}" ps --quiet); do
        read -r name status health code < <(docker inspect --format \
            '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}}' "$container")
        case "$status/$health" in
            running/healthy | running/none) ;;
            exited/*) [ "$code" = 0 ] || fail "${name#/} exited with $code: docker logs ${name#/}" ;;
            */unhealthy) fail "${name#/} is unhealthy: docker logs ${name#/}" ;;
            *) waiting+=("${name#/}") ;;
        esac
    done
    [ "${#waiting[@]}" -eq 0 ] && break
    [ "$(date +%s)" -lt "$deadline" ] || fail "not healthy after ${WAIT_SECONDS} s: ${waiting[*]}"
    sleep 5
done
echo "stack: healthy in $(($(date +%s) - started)) s"
echo "  Airflow     http://127.0.0.1:8080   (admin, AIRFLOW_ADMIN_PASSWORD of .env)"
echo "  MLflow      http://127.0.0.1:5000   (MLFLOW_ADMIN_USER, MLFLOW_ADMIN_PASSWORD)"
echo "  forecasts   http://127.0.0.1:8000/docs"
echo "  Prometheus  http://127.0.0.1:9090"
if [ -z "$local_infra" ]; then
    echo "  Grafana     http://127.0.0.1:3000   (admin, GRAFANA_ADMIN_PASSWORD)"
    echo "  MinIO       http://127.0.0.1:9001"
fi
