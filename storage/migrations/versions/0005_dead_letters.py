"""dead letters: writes the database refused for a reason of their own (a constraint, their data, a bug),
moved aside so the write queue goes on

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'dead_letters',
        sa.Column('id', sa.String(length=32), primary_key=True),
        sa.Column('worker', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('write', sa.Text(), nullable=False),
        sa.Column('error_type', sa.String(length=128), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('retried_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
    )
    op.create_index('ix_dead_letters_kind', 'dead_letters', ['kind'])
    op.create_index('ix_dead_letters_call_sid', 'dead_letters', ['call_sid'])


def downgrade() -> None:
    op.drop_table('dead_letters')
