"""The forecast table: every forecast the platform issued, kept to be queried and scored.

One table in a real database (SQLite under the home by default, PostgreSQL in the compose and k8s
profiles), its schema managed by Alembic migrations (``forecast_store/migrations``), read and
written through SQLAlchemy. It builds on the base layer alone, so the service can read it.
"""
