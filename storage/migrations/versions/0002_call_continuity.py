"""call continuity: the worker that owns a live call, its heartbeat and last known metrics, the
fallback taken, the TwiML the stream's action URL answers with; utterances unique per (call, seq) so a
replayed write never duplicates one

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker', sa.String(length=128), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('fallback', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('after_twiml', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('utterances', schema=None) as batch_op:
        batch_op.create_index('ux_utterances_call_seq', ['call_sid', 'seq'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('utterances', schema=None) as batch_op:
        batch_op.drop_index('ux_utterances_call_seq')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('after_twiml')
        batch_op.drop_column('fallback')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('worker')
