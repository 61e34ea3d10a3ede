"""handoffs and outbound calls: a call's segments (the agent, a transfer, the agent again), its transfer's
legs and outcome, its direction and who answered it (an answering machine or a person), the lead it calls
back; a lead's scheduled callback; each business's do-not-call list; the scheduler's leader lease

Revision ID: 0008
Revises: 0007
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('segments', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('transfer', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('direction', sa.String(length=16), nullable=False, server_default='inbound'))
        batch_op.add_column(sa.Column('answered_by', sa.String(length=32), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('lead_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('purpose', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('callback_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('callback_status', sa.String(length=16), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('callback_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('callback_call_sid', sa.String(length=64), nullable=False, server_default=''))
        batch_op.create_index('ix_leads_callback_due', ['callback_status', 'callback_at'])
    op.create_table(
        'do_not_call',
        sa.Column('business_id', sa.String(length=64), primary_key=True),
        sa.Column('number', sa.String(length=32), primary_key=True),
        sa.Column('reason', sa.Text(), nullable=False, server_default=''),
        sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        'scheduler_lease',
        sa.Column('name', sa.String(length=64), primary_key=True),
        sa.Column('holder', sa.String(length=128), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('scheduler_lease')
    op.drop_table('do_not_call')
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index('ix_leads_callback_due')
        for column in ('callback_call_sid', 'callback_attempts', 'callback_status', 'callback_at'):
            batch_op.drop_column(column)
    with op.batch_alter_table('calls', schema=None) as batch_op:
        for column in ('purpose', 'lead_id', 'answered_by', 'direction', 'transfer', 'segments'):
            batch_op.drop_column(column)
