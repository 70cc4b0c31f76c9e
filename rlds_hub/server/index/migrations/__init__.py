"""Alembic migrations of the index (run by rlds_hub.server.index.database.migrate)."""
