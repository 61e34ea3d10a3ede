"""Persistence (SQLAlchemy 2 async). Knows nothing of actors or the gateway."""
