"""Alembic environment: run on the connection kolbridge hands over (storage.db.upgrade_schema)."""
from __future__ import annotations

from alembic import context

from storage.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover — kolbridge always passes its own connection
    raise RuntimeError("run migrations with `kolbridge db upgrade`")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
