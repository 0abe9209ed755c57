"""Orchestration glue that only the DAG files use: what every DAG shares, a retraining run's plan,
and the training launcher (a local process or a pod on the GPU node pool).

The only package of the platform that imports Airflow; no library package imports it (an
import-linter contract holds both), so every step stays a plain function that runs without Airflow.
"""
