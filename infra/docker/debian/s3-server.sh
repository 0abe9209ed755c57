#!/usr/bin/env bash
# moto's S3 server with its objects kept across restarts: it records each request it serves
# (MOTO_ENABLE_RECORDING, to MOTO_RECORDER_FILEPATH on the volume), and at start replays what an
# earlier life recorded before it says it is ready (/tmp/s3-ready, the healthcheck). Buckets named
# in S3_BUCKETS are created on first start, as minio-init does for MinIO.
set -euo pipefail
port="${S3_PORT:-9000}"
rm -f /tmp/s3-ready
moto_server -H 0.0.0.0 -p "$port" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server"' TERM INT
python - "$port" <<'PY'
import os, sys, time, urllib.request

base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(300):
    try:
        urllib.request.urlopen(f"{base}/moto-api/", timeout=2)
        break
    except OSError:
        time.sleep(0.2)
recording = os.environ["MOTO_RECORDER_FILEPATH"]
if os.path.getsize(recording) if os.path.exists(recording) else 0:
    started = time.monotonic()
    urllib.request.urlopen(urllib.request.Request(f"{base}/moto-api/recorder/replay-recording", method="POST"))
    print(f"s3-server: replayed {recording} in {time.monotonic() - started:.1f} s", flush=True)
for bucket in os.environ.get("S3_BUCKETS", "").split():
    try:
        urllib.request.urlopen(urllib.request.Request(f"{base}/{bucket}", method="PUT"))
    except urllib.error.HTTPError as exists:
        if exists.code != 409:
            raise
PY
touch /tmp/s3-ready
wait "$server"
