"""Request bodies of the API, validated by pydantic before any handler runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from statewise.actions.principal import name_problem, queues_problem
from statewise.actions.retention import parse_age
from statewise.definition.model import Role
from statewise.engine.events import Operation
from statewise.engine.item import ItemStatus
from statewise.inputs import MAX_ROW_ID, MAX_VERSION, check_key, check_wrapped
from statewise.store.retention import Prunable

MAX_BATCH = 10_000
# Ids are positive and fit every store's integer column.
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
# The one key rule of every entry point; its InvalidInputError is a ValueError, hence a 422.
Key = Annotated[str, AfterValidator(check_key)]


def _in_data(value: object, allowed: tuple[str, ...]) -> object:
    """Refuse item data sent beside the key, which pydantic would otherwise drop silently."""
    if isinstance(value, dict):
        check_wrapped(value, allowed, "the item")
    return value


class StartItem(BaseModel):
    """Start one item; a key that exists already leaves that item as it is."""

    workflow: str = Field(min_length=1)
    key: Key
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _data_wrapped(cls, value: object) -> object:
        return _in_data(value, ("workflow", "key", "data"))


class BatchEntry(BaseModel):
    """One item of a batch start."""

    key: Key
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _data_wrapped(cls, value: object) -> object:
        return _in_data(value, ("key", "data"))


class StartBatch(BaseModel):
    """Start up to 10,000 items of one workflow, idempotent per key."""

    workflow: str = Field(min_length=1)
    items: list[BatchEntry] = Field(min_length=1, max_length=MAX_BATCH)


class SendEvent(BaseModel):
    """An external event for one item."""

    name: str = Field(min_length=1)
    data: dict[str, Any] = Field(default_factory=dict)


class Redrive(BaseModel):
    """Retry the failed command (``to`` null) or move into state ``to``."""

    reason: str = Field(min_length=1)
    to: str | None = None
    to_version: int | None = Field(
        default=None, ge=1, le=MAX_VERSION, description="Move onto this version of the workflow"
    )


class Migrate(BaseModel):
    """Move the workflow's in-flight items onto version ``to``; a dry run unless told otherwise.

    ``map`` sends items in an old state to a state of the new version; unmapped states go to
    the new version's ``migrations:``, else to the state of the same name.
    """

    to: int = Field(ge=1, le=MAX_VERSION)
    reason: str = ""
    map: dict[str, str] = Field(default_factory=dict)
    dry_run: bool = True


class Bulk(BaseModel):
    """One operation on every item the filter matches; a dry run unless told otherwise."""

    operation: Operation
    reason: str = Field(min_length=1)
    target: str | None = None
    workflow: str | None = None
    state: str | None = None
    status: ItemStatus | None = None
    older_than: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    q: str | None = Field(default=None, description="Part of the key, literal and case-sensitive")
    dry_run: bool = True


class Decide(BaseModel):
    """A person's decision of a human task."""

    outcome: str = Field(min_length=1)
    comment: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class NewToken(BaseModel):
    """A token to create; its secret is shown once in the answer."""

    name: str
    role: Role
    queues: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _an_identity(cls, name: str) -> str:
        problem = name_problem(name)
        if problem is not None:
            raise ValueError(problem)
        return name

    @field_validator("queues")
    @classmethod
    def _queues_a_workflow_can_have(cls, queues: list[str]) -> list[str]:
        problem = queues_problem(queues)
        if problem is not None:
            raise ValueError(problem)
        return queues


def _age(value: object) -> float:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"finished_before must be a duration such as 90d, not {value!r}")
    return parse_age(value, "finished_before")


class Prune(BaseModel):
    """Prune finished items by the workflows' policies, or by one age; a dry run by default.

    ``what`` defaults to both parts of the policies, or to ``outputs`` with an age.
    """

    finished_before: Annotated[float | None, BeforeValidator(_age)] = Field(
        default=None, description="An age such as 90d (or seconds); none: the policies"
    )
    workflow: str | None = None
    what: Prunable | None = None
    dry_run: bool = True
