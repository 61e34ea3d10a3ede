"""the agent acts: per-business tools/lead form/webhook/transfer/conversation (businesses.agent), the
transfer summary on the call, leads, tool calls, and the webhook outbox

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('businesses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agent', sa.JSON(), nullable=False, server_default='{}'))
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('transfer_summary', sa.Text(), nullable=False, server_default=''))
    op.create_table(
        'leads',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('tool_call_id', sa.String(length=128), nullable=False),
        sa.Column('business_id', sa.String(length=64), nullable=False),
        sa.Column('fields', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_leads_call_sid', 'leads', ['call_sid'])
    op.create_index('ix_leads_business_id', 'leads', ['business_id'])
    op.create_index('ux_leads_call_tool', 'leads', ['call_sid', 'tool_call_id'], unique=True)
    op.create_table(
        'tool_calls',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('tool_call_id', sa.String(length=128), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('arguments', sa.Text(), nullable=False),
        sa.Column('output', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('elapsed_ms', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_tool_calls_call_sid', 'tool_calls', ['call_sid'])
    op.create_index('ux_tool_calls_call_tool', 'tool_calls', ['call_sid', 'tool_call_id'], unique=True)
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.String(length=64), primary_key=True),
        sa.Column('business_id', sa.String(length=64), nullable=False),
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index('ix_webhook_deliveries_business_id', 'webhook_deliveries', ['business_id'])
    op.create_index('ix_webhook_deliveries_call_sid', 'webhook_deliveries', ['call_sid'])
    op.create_index('ix_webhook_deliveries_state', 'webhook_deliveries', ['state'])


def downgrade() -> None:
    op.drop_table('webhook_deliveries')
    op.drop_table('tool_calls')
    op.drop_table('leads')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('transfer_summary')
    with op.batch_alter_table('businesses', schema=None) as batch_op:
        batch_op.drop_column('agent')
