"""Versions of the schema, by Alembic. A new database gets the current tables and is
marked with the newest version; an existing one moves through the versions in order
(``epay-tui db upgrade``). A database from before versions existed is version 0001 once
the columns it may lack are added.

Alembic is imported only to move a database on: opening one at the newest version reads
the version row alone (the server and the embedded backend start faster).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, inspect, select

from epay_tui.server.store.schema import metadata

NEWEST = "0005"
"""The newest version in ``versions/`` (a test holds the two together)."""

_alembic_version = Table(  # Alembic's own bookkeeping table, as Alembic makes it
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), primary_key=True),
)


class SchemaTooOld(RuntimeError):
    """The database's schema is older than this program's; ``db upgrade`` brings it on."""


def alembic_config(connection: Connection | None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def version_of(connection: Connection) -> str | None:
    """The database's schema version; None for an empty one or one from before versions."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(select(_alembic_version.c.version_num)).scalar()


def prepare(engine: Engine, *, upgrade: bool) -> None:
    """A new database: the current tables, marked newest. An older one: upgraded if
    ``upgrade``, else :class:`SchemaTooOld` saying what to run."""
    with engine.begin() as connection:
        found = version_of(connection)
        if found == NEWEST:
            return
        if found is None and not set(inspect(connection).get_table_names()):
            metadata.create_all(connection)
            _alembic_version.create(connection)
            connection.execute(_alembic_version.insert().values(version_num=NEWEST))
            return
        if not upgrade:
            raise SchemaTooOld(
                f"the database's schema is version {found or 'from before versions'}, this "
                f"program needs {NEWEST}: run `epay-tui db upgrade --db ...` first"
            )
        from alembic import command

        command.upgrade(alembic_config(connection), "head")


def upgrade_database(engine: Engine) -> tuple[str | None, str]:
    """``epay-tui db upgrade``: (the version before, the version now)."""
    with engine.connect() as connection:
        before = version_of(connection)
    prepare(engine, upgrade=True)
    with engine.connect() as connection:
        return before, version_of(connection) or ""
