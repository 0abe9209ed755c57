#!/usr/bin/env bash
# A Python 3.11 base image made from Debian's own packages, for machines that reach Debian's mirror
# but no image registry (python:3.11-slim-bookworm cannot be pulled there). Bookworm's Python is
# 3.11, as the project's. debootstrap writes a minimal bookworm into a folder and `docker import`
# turns it into an image; the Dockerfiles then build FROM it (infra/docker/images.sh, BASE=debian-local).
#
#   infra/docker/debian-base.sh [IMAGE]     (root: debootstrap needs it; IMAGE: mlops-python:3.11-bookworm)
#
# Idempotent: an image already there is kept (FORCE=1 makes it again). DEBIAN_MIRROR picks the mirror.
set -euo pipefail

IMAGE="${1:-mlops-python:3.11-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKER="${DOCKER:-docker}"

fail() { echo "debian-base: $*" >&2; exit 1; }

command -v "$DOCKER" >/dev/null || fail "no docker client: install Docker (Debian: apt-get install docker.io)"
"$DOCKER" info >/dev/null 2>&1 || fail "no Docker daemon answers: start it (systemctl start docker, or dockerd & as root)"
if [ -z "${FORCE:-}" ] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "debian-base: $IMAGE is there (FORCE=1 makes it again)"
    exit 0
fi
[ "$(id -u)" = 0 ] || fail "debootstrap needs root: run it as root (sudo $0)"
command -v debootstrap >/dev/null || fail "no debootstrap: apt-get install debootstrap"

root="$(mktemp -d /var/tmp/debian-base.XXXXXX)"
# debootstrap mounts /proc and /sys into the tree while it installs: a failed run may leave them
# mounted, and the clean-up unmounts them before it removes anything (never past the tree's own disk).
cleanup() {
    awk -v root="$root" 'index($2, root) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf --one-file-system "$root"
}
trap cleanup EXIT
# What the Dockerfiles expect of python:3.11-slim-bookworm: `python`, venv with pip, CA certificates;
# libgomp1 is what XGBoost, LightGBM and torch load for their threads.
packages=python3,python3-venv,python-is-python3,ca-certificates,libgomp1
echo "debian-base: debootstrap bookworm from $MIRROR (log: $root.log)"
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -n 20 "$root.log"; fail "debootstrap failed; the whole log: $root.log"; }
# As Debian's official images do: no package lists or caches in the layer, no recommends later.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log "$root"/tmp/*
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/90-no-recommends"

tar --numeric-owner --one-file-system -C "$root" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase bookworm $MIRROR + $packages" \
    - "$IMAGE" >/dev/null
rm -f "$root.log"
echo "debian-base: $IMAGE ($("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
