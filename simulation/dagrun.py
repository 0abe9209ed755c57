"""``python -m simulation.dagrun DAG_ID KWARGS_JSON``: one ``dag.test()`` run in a process of its own.

The simulation runs a DAG here when a fault is to kill the process that runs it mid-task; the
environment (Airflow's home and database, the platform's settings) is the simulation's, inherited.
``KWARGS_JSON`` holds ``dag.test()``'s arguments; ``logical_date`` as an ISO 8601 string. Exits 0
when the run succeeded.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Any


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    dag_id, kwargs = args[0], json.loads(args[1])
    test_kwargs: dict[str, Any] = dict(kwargs)
    if "logical_date" in test_kwargs:
        test_kwargs["logical_date"] = datetime.fromisoformat(test_kwargs["logical_date"])
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag(dag_id)
    if dag is None:
        print(f"no DAG {dag_id}", file=sys.stderr)
        return 2
    run = dag.test(**test_kwargs)
    print(f"dag run {run.run_id}: {run.state}", flush=True)
    return 0 if str(run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
