"""caller languages: a business's languages (the first is the greeting's), per-language greetings and lexicon
additions, retention days; a call's caller language and the moments it switched

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('businesses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('languages', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('greetings', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('lexicons', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('retention_days', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('caller_language', sa.String(length=16), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('language_switches', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.create_index('ix_calls_business_caller', ['business_id', 'from_number', 'started_at'])


def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_business_caller')
        batch_op.drop_column('language_switches')
        batch_op.drop_column('caller_language')
    with op.batch_alter_table('businesses', schema=None) as batch_op:
        batch_op.drop_column('retention_days')
        batch_op.drop_column('lexicons')
        batch_op.drop_column('greetings')
        batch_op.drop_column('languages')
