"""Handoffs (issue 23): cold and warm transfers, and the caller back with the agent when nobody answers."""
