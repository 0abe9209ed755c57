#!/usr/bin/env bash
# The platform's images, built from this repository (make images):
#
#   infra/docker/images.sh [IMAGE...]      IMAGE: airflow mlflow serving training (default: these four),
#                                          or postgres redis prometheus pushgateway s3: the infrastructure
#                                          made of Debian's packages (infra/docker/debian/) for make up
#                                          where the registry's images cannot be pulled
#
#   BASE=auto          the official Python image when it can be pulled, else the Debian-made one (default)
#   BASE=official      python:3.11-slim-bookworm, pulled from the registry
#   BASE=debian-local  mlops-python:3.11-bookworm, made from Debian's packages (infra/docker/debian-base.sh)
#   TAG=local          the images' tag (compose runs mlops-<image>:local)
#   PIP_CA=<file>      a CA bundle pip needs inside the build (default: /etc/ssl/certs/ca-certificates.crt
#                      when there is one), passed as a build secret: never in a layer
#   REPORT=<file>      build time and size per image as JSON (default: reports/images.json)
#
# A wheel of CPU torch at the pinned version that pip's find-links hold (pip config list) is handed to
# the builds (infra/docker/wheels), so no build reaches for another index; without one, each
# Dockerfile's TORCH_INDEX applies.
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE="${BASE:-auto}"
TAG="${TAG:-local}"
REPORT="${REPORT:-reports/images.json}"
OFFICIAL=python:3.11-slim-bookworm
LOCAL=mlops-python:3.11-bookworm
PLATFORM=(airflow mlflow serving training)
DEBIAN=(postgres redis prometheus pushgateway s3)
IMAGES=("$@")
[ "${#IMAGES[@]}" -gt 0 ] || IMAGES=("${PLATFORM[@]}")

fail() { echo "images: $*" >&2; exit 1; }

dockerfile() {
    if [ -f "infra/docker/$1.Dockerfile" ]; then echo "infra/docker/$1.Dockerfile"; else echo "infra/docker/debian/$1.Dockerfile"; fi
}
for image in "${IMAGES[@]}"; do
    [ -f "$(dockerfile "$image")" ] || fail "no image named $image (one of: ${PLATFORM[*]} ${DEBIAN[*]})"
done

command -v docker >/dev/null || fail "no docker client: install Docker (Debian: apt-get install docker.io)"
docker info >/dev/null 2>&1 || fail "no Docker daemon answers: start it (systemctl start docker, or dockerd & as root)"
# A client that builds with BuildKit (the builds mount secrets and files): the buildx plugin, or a
# client older than Docker 23, whose `docker build` has BuildKit built in (Debian 12's docker.io).
build=()
if docker buildx version >/dev/null 2>&1; then
    build=(docker buildx build --load)
else
    for client in $(type -ap docker); do
        version="$("$client" version --format '{{.Client.Version}}' 2>/dev/null || true)"
        if [ -n "$version" ] && [ "${version%%.*}" -lt 23 ] 2>/dev/null; then
            build=(env DOCKER_BUILDKIT=1 "$client" build)
            break
        fi
    done
fi
[ "${#build[@]}" -gt 0 ] || fail "docker build needs BuildKit: install the buildx plugin (Debian 13: apt-get install docker-buildx)"

case "$BASE" in
    official) base="$OFFICIAL" ;;
    debian-local) base="$LOCAL" ;;
    auto)
        if docker image inspect "$OFFICIAL" >/dev/null 2>&1 || timeout 120 docker pull --quiet "$OFFICIAL" >/dev/null 2>&1; then
            base="$OFFICIAL"
        else
            echo "images: $OFFICIAL cannot be pulled here: building on $LOCAL, made from Debian's packages"
            base="$LOCAL"
        fi
        ;;
    *) fail "BASE is auto, official or debian-local, not $BASE" ;;
esac
if [ "$base" = "$LOCAL" ]; then
    infra/docker/debian-base.sh "$LOCAL"
fi

# CPU torch from this machine's wheels when they have the pinned release; else each Dockerfile's own
# TORCH_INDEX (PyTorch's CPU index; PyPI's CUDA build for the training image of the GPU node pool).
torch="$(sed -n 's/^torch==//p' requirements.txt)"
torch_arg=()
find_links="$(python3 -m pip config list 2>/dev/null | sed -n "s/^[^=]*find-links='\(.*\)'$/\1/p" | tr ' ' '\n' | sed 's|^file://||')"
for folder in $find_links; do
    for wheel in "$folder"/torch-"$torch"+cpu-cp311-*.whl; do
        [ -f "$wheel" ] || continue
        [ -f "infra/docker/wheels/$(basename "$wheel")" ] || cp "$wheel" infra/docker/wheels/
        torch_arg=(--build-arg TORCH_INDEX=)
    done
done
[ "${#torch_arg[@]}" -gt 0 ] && echo "images: CPU torch $torch from this machine's wheels"

secret=()
ca="${PIP_CA:-/etc/ssl/certs/ca-certificates.crt}"
[ -s "$ca" ] && secret=(--secret "id=pip-ca,src=$ca")
version="$(git describe --always --dirty 2>/dev/null || echo unknown)"

mkdir -p "$(dirname "$REPORT")"
entries=()
for image in "${IMAGES[@]}"; do
    log="$(mktemp "/tmp/image-$image.XXXXXX.log")"
    echo "images: building mlops-$image:$TAG on $base (log: $log)"
    started="$(date +%s)"
    "${build[@]}" --file "$(dockerfile "$image")" --tag "mlops-$image:$TAG" \
        --build-arg "BASE=$base" --build-arg "CODE_VERSION=$version" "${torch_arg[@]}" \
        "${secret[@]}" . >"$log" 2>&1 \
        || { tail -n 30 "$log"; fail "mlops-$image:$TAG did not build; the whole log: $log"; }
    seconds=$(($(date +%s) - started))
    bytes="$(docker image inspect --format '{{.Size}}' "mlops-$image:$TAG")"
    echo "images: mlops-$image:$TAG built in ${seconds} s, $((bytes / 1000000)) MB"
    entries+=("\"$image\": {\"image\": \"mlops-$image:$TAG\", \"build_seconds\": $seconds, \"bytes\": $bytes}")
    rm -f "$log"
done
{
    printf '{"base": "%s", "code_version": "%s", "images": {' "$base" "$version"
    (IFS=,; printf '%s' "${entries[*]}")
    printf '}}\n'
} >"$REPORT"
echo "images: build times and sizes in $REPORT"
