"""The pytest fixture: ``pytest_plugins = ["statewise.testing"]`` in a conftest enables it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from statewise.contract import CommandRegistry
from statewise.definition.builder import Workflow
from statewise.definition.model import Definition
from statewise.testing.clock import VirtualClock
from statewise.testing.harness import WorkflowTest


class MakeWorkflowTest(Protocol):
    """What the ``workflow_test`` fixture gives: call it with a workflow to test."""

    def __call__(
        self,
        workflow: Definition | Workflow | str | Path,
        commands: CommandRegistry | str | Path | Sequence[str | Path] | None = None,
        *,
        clock: VirtualClock | None = None,
    ) -> WorkflowTest:
        """A :class:`WorkflowTest` of ``workflow`` on a new SQLite file in ``tmp_path``."""


@pytest.fixture
def workflow_test(tmp_path: Path) -> Iterator[MakeWorkflowTest]:
    """Make a :class:`WorkflowTest` of a workflow on its own SQLite file, closed afterwards.

    ``workflow_test("review.yaml", commands=registry)``: several in one test get one file each.
    """
    made: list[WorkflowTest] = []

    def make(
        workflow: Definition | Workflow | str | Path,
        commands: CommandRegistry | str | Path | Sequence[str | Path] | None = None,
        *,
        clock: VirtualClock | None = None,
    ) -> WorkflowTest:
        db = tmp_path / f"workflow-test-{len(made) + 1}.sqlite"
        made.append(WorkflowTest(workflow, db, commands, clock=clock))
        return made[-1]

    yield make
    for flow in made:
        flow.close()
