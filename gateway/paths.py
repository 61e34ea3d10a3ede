"""Where a worker keeps its files: beside the SQLite database (else in the working directory) unless
config.toml names a directory — the database write journal and the call recordings."""
from __future__ import annotations

from pathlib import Path

from gateway.config import AppConfig
from storage.db import sqlite_file


def beside_database(database_url: str, name: str) -> Path:
    """Next to the SQLite file, else in the working directory."""
    database = sqlite_file(database_url)
    return (database.resolve().parent if database is not None else Path.cwd()) / name


def journal_dir(config: AppConfig) -> Path:
    server = config.file.server
    return Path(server.journal_dir) if server.journal_dir else beside_database(config.env.database_url, "journal")


def recordings_dir(config: AppConfig) -> Path:
    server = config.file.server
    return Path(server.recordings_dir) if server.recordings_dir else beside_database(config.env.database_url, "recordings")
