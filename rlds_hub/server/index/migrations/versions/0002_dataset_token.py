"""datasets.token: a value never reused, changed by every write of the row (the key of what
server processes keep about a dataset; SQLite reuses row ids after a DELETE).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("datasets", sa.Column("token", sa.String(length=32), nullable=True))
    datasets = sa.table(
        "datasets", sa.column("id", sa.Integer()), sa.column("token", sa.String(length=32))
    )
    connection = op.get_bind()
    for (dataset_id,) in connection.execute(sa.select(datasets.c.id)).all():
        connection.execute(
            sa.update(datasets).where(datasets.c.id == dataset_id).values(token=uuid.uuid4().hex)
        )


def downgrade() -> None:
    op.drop_column("datasets", "token")
