"""Stored definitions: each (workflow, version) immutable, recognised by its content hash."""

from __future__ import annotations

import json
from collections.abc import Sequence

import yaml

from statewise.definition import fingerprint
from statewise.definition.model import DEFAULT_ESCALATION, Definition
from statewise.errors import VersionConflictError
from statewise.store import codec
from statewise.store.base import StoredWorkflow, WorkflowStamp
from statewise.store.connection import Connection


def save_workflow_txn(
    db: Connection, definition: Definition, file: str, commands: Sequence[str], now: float
) -> None:
    """Store a definition once; the same content again only updates its command modules.

    Raises VersionConflictError when the (name, version) is stored with other content.
    """
    digest = fingerprint.content_hash(definition.source)
    key = (definition.name, definition.version)
    db.execute(
        "INSERT INTO workflows (name, version, source, file, commands, created_at, content_hash, "
        "escalation) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, version) DO NOTHING",
        (
            *key,
            definition.source,
            file,
            codec.dumps(list(commands)),
            now,
            digest,
            definition.escalation,
        ),
    )
    ((stored_source, stored_hash, stored_file),) = db.execute(
        "SELECT source, content_hash, file FROM workflows WHERE name = ? AND version = ?", key
    )
    if stored_hash != digest:
        raise VersionConflictError(
            f"workflow {definition.name!r} version {definition.version} is already stored "
            f"(from {stored_file}) with different content, and items run on exactly the "
            f"definition they started on; bump `version` in {file} to keep this change.\n"
            + fingerprint.describe_change(stored_source, definition.source)
        )
    db.execute(
        "UPDATE workflows SET commands = ? WHERE name = ? AND version = ?",
        (codec.dumps(list(commands)), *key),
    )


def workflows_txn(db: Connection) -> list[StoredWorkflow]:
    """Every stored definition, by name and version."""
    rows = db.execute(
        "SELECT name, version, source, file, commands, content_hash FROM workflows "
        "ORDER BY name, version"
    )
    return [StoredWorkflow(n, v, s, f, tuple(json.loads(c)), h) for n, v, s, f, c, h in rows]


def workflow_stamps_txn(db: Connection) -> list[WorkflowStamp]:
    """Every stored version's stamp, in ``workflows_txn`` order, without reading sources."""
    rows = db.execute(
        "SELECT name, version, content_hash, commands FROM workflows ORDER BY name, version"
    )
    return [(n, v, h, tuple(json.loads(c))) for n, v, h, c in rows]


def escalation_txn(db: Connection, workflow: str, version: int) -> str | None:
    """The escalation state a stored version declared; None when the version is not stored."""
    rows = db.execute(
        "SELECT escalation FROM workflows WHERE name = ? AND version = ?", (workflow, version)
    )
    return str(rows[0][0]) if rows else None


def fill_escalations_txn(db: Connection) -> None:
    """Migration step: the escalation state of each stored version, read from its source.

    Only the top-level ``escalation:`` key decides it (the loader's own rule); a source that
    no longer reads keeps the default.
    """
    rows = db.execute("SELECT name, version, source FROM workflows")
    db.executemany(
        "UPDATE workflows SET escalation = ? WHERE name = ? AND version = ?",
        [(_declared_escalation(source), name, version) for name, version, source in rows],
    )


def _declared_escalation(source: str) -> str:
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError:
        return DEFAULT_ESCALATION
    named = data.get("escalation") if isinstance(data, dict) else None
    return named if isinstance(named, str) and named else DEFAULT_ESCALATION


def fill_content_hashes_txn(db: Connection) -> None:
    """Migration step: hash the definitions stored before hashes were kept."""
    rows = db.execute("SELECT name, version, source FROM workflows WHERE content_hash = ''")
    db.executemany(
        "UPDATE workflows SET content_hash = ? WHERE name = ? AND version = ?",
        [(fingerprint.content_hash(source), name, version) for name, version, source in rows],
    )
