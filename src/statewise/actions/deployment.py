"""Versions side by side: deploying definitions, listing them with their items, naming one.

A store keeps every (workflow, version) it was given, immutable and recognised by its content
hash, and items stay on the version they started on until an operator migrates them. Deploying
stores a validated definition without starting anything, so a service can be set up before
its first item; deploying the same content again changes nothing and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from statewise.definition import fingerprint, load
from statewise.definition.model import Definition
from statewise.engine.item import ItemStatus
from statewise.errors import NotFoundError, VersionConflictError
from statewise.store.base import Store, StoredWorkflow
from statewise.worker.registry import load_registry, module_name


@dataclass(frozen=True, slots=True)
class Deployed:
    """One deployed file: its definition, and whether the store already held that content."""

    definition: Definition
    file: str
    new: bool


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """A stored version and how many of its items are in each status."""

    stored: StoredWorkflow
    items: dict[ItemStatus, int] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.stored.name}@{self.stored.version}"


async def deploy(store: Store, files: Sequence[Path], commands: Sequence[str]) -> list[Deployed]:
    """Validate every file first, then store each; nothing is stored if one is refused.

    ``commands`` name the modules whose registries the workflows' commands come from; given,
    every command a workflow names must be registered in them, and they are recorded as the
    modules each workflow runs with. A (name, version) stored with
    other content raises VersionConflictError (bump ``version``) and stores nothing more.
    """
    registry = load_registry(list(commands)) if commands else None
    names = registry.names() if registry is not None else None
    definitions = [(load(file, commands=names), str(file)) for file in files]
    seen: dict[tuple[str, int], tuple[str, str]] = {}
    for definition, file in definitions:
        digest = fingerprint.content_hash(definition.source)
        other = seen.setdefault((definition.name, definition.version), (digest, file))
        if other[0] != digest:
            raise VersionConflictError(
                f"{other[1]} and {file} both hold {definition.ref} with different content; "
                f"bump `version` in one of them. Nothing was deployed"
            )
    stored = {(w.name, w.version): w.content_hash for w in await store.workflows()}
    modules = [module_name(spec) for spec in commands]
    changed = [
        (definition, file, stored.get((definition.name, definition.version)))
        for definition, file in definitions
    ]
    for definition, file, known in changed:
        if known not in (None, fingerprint.content_hash(definition.source)):
            # A changed version is refused before anything is stored; the store's own refusal
            # says what differs.
            await store.save_workflow(definition, file, modules)
    deployed: list[Deployed] = []
    for definition, file, known in changed:
        # A second file of a version this deploy stored holds the same content (checked above).
        again = any(d.definition.ref == definition.ref for d in deployed)
        new = known != fingerprint.content_hash(definition.source) and not again
        if new or (modules and not again):  # the same content only records the modules given
            await store.save_workflow(definition, file, modules)
        deployed.append(Deployed(definition, file, new))
    return deployed


async def versions(store: Store, workflow: str | None = None) -> list[VersionSummary]:
    """Every stored version (of ``workflow``, if named) with its items per status."""
    summaries = {
        (w.name, w.version): VersionSummary(w)
        for w in await store.workflows()
        if workflow is None or w.name == workflow
    }
    for row in await store.state_counts(workflow):
        summary = summaries.get((row.workflow, row.version))
        if summary is not None:  # items of a version never stored are the runner's to fail
            summary.items[row.status] = summary.items.get(row.status, 0) + row.count
    return list(summaries.values())


def split_ref(text: str) -> tuple[str, int | None]:
    """``name`` or ``name@version`` as (name, version); ValueError for a bad version."""
    name, at, version = text.rpartition("@")
    if not at:
        return text, None
    if not version.isdigit() or not name:
        raise ValueError(f"{text!r} is not NAME or NAME@VERSION (a version is a number)")
    return name, int(version)


async def stored_version(store: Store, name: str, version: int) -> StoredWorkflow:
    """The stored ``name@version``; NotFoundError names the versions the store has."""
    stored = [w for w in await store.workflows() if w.name == name]
    for workflow in stored:
        if workflow.version == version:
            return workflow
    have = ", ".join(f"{w.name}@{w.version}" for w in stored)
    hint = f"stored: {have}" if have else f"no version of {name!r} is stored"
    raise NotFoundError(
        f"workflow {name}@{version} is not stored ({hint}); deploy it with `statewise deploy FILE`"
    )
