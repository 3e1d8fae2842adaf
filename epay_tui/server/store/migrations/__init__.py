"""Versions of the schema, by Alembic. A new database gets the current tables and is
marked with the newest version; an existing one moves through the versions in order
(``epay-tui db upgrade``). A database from before versions existed is version 0001 once
the columns it may lack are added."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from epay_tui.server.store.schema import metadata


class SchemaTooOld(RuntimeError):
    """The database's schema is older than this program's; ``db upgrade`` brings it on."""


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def newest() -> str:
    return ScriptDirectory.from_config(_config(None)).get_current_head() or ""  # type: ignore[arg-type]


def version_of(connection: Connection) -> str | None:
    """The database's schema version; None for an empty one or one from before versions."""
    return MigrationContext.configure(connection).get_current_revision()


def prepare(engine: Engine, *, upgrade: bool) -> None:
    """A new database: the current tables, marked newest. An older one: upgraded if
    ``upgrade``, else :class:`SchemaTooOld` saying what to run."""
    with engine.begin() as connection:
        tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
        if not tables:
            metadata.create_all(connection)
            command.stamp(_config(connection), "head")
            return
        found, wanted = version_of(connection), newest()
        if found == wanted:
            return
        if not upgrade:
            raise SchemaTooOld(
                f"the database's schema is version {found or 'from before versions'}, this "
                f"program needs {wanted}: run `epay-tui db upgrade --db ...` first"
            )
        command.upgrade(_config(connection), "head")


def upgrade_database(engine: Engine) -> tuple[str | None, str]:
    """``epay-tui db upgrade``: (the version before, the version now)."""
    with engine.connect() as connection:
        before = version_of(connection)
    prepare(engine, upgrade=True)
    with engine.connect() as connection:
        return before, version_of(connection) or ""
