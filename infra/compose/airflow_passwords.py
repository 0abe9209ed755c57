"""Writes the Airflow login of the compose stack: SimpleAuthManager's passwords file, from the environment.

Airflow would otherwise generate a random password into its own container. The file is readable by
its owner only. Usage: AIRFLOW_ADMIN_PASSWORD=... python airflow_passwords.py PATH
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(path: str) -> None:
    user = os.environ.get("AIRFLOW_ADMIN_USER", "admin")
    password = os.environ.get("AIRFLOW_ADMIN_PASSWORD", "")
    if len(password) < 12:
        sys.exit("AIRFLOW_ADMIN_PASSWORD must be set, at least 12 characters")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump({user: password}, file)
    os.replace(tmp, target)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
