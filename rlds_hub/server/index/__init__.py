"""The index: SQLAlchemy models, migrations, discovery, indexing and queries."""
