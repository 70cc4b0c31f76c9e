"""Alembic environment of the service's index: runs on the connection the caller passes
(``rlds_hub.server.index.database.migrate``), or on ``sqlalchemy.url`` from the config."""

from alembic import context
from sqlalchemy import create_engine

from rlds_hub.server.index.models import Base

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as own:
        context.configure(connection=own, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()


run()
