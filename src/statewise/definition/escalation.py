"""The escalation states statewise adds when a workflow declares none: a person decides.

A business escalation (a provider still down after every retry, a command's deliberate
``PermanentError``, a spent visit budget, an overdue task) is a decision the process cannot
make by itself, so it goes to a person, never into a silent final state. Unless a workflow
names its own ``escalation:`` state or declares a state ``escalated``, statewise adds:

- ``escalated``, a human state with a task in queue ``escalations`` for operators (they can
  also redrive the item back into the process, which reviewers cannot);
- its outcomes ``resolve`` (a person dealt with it) and ``abandon`` (nobody will), which end
  the item in the final states ``escalation_resolved`` and ``escalation_abandoned``.

A workflow that declares a state of one of those final names itself is told so by
validation, rather than having either state silently replace the other. Defects (a condition
that cannot be evaluated, no matching transition, an unusable result, an unexpected
exception) never come here: they fail the item (``statewise.engine.defects``).
"""

from __future__ import annotations

from statewise.definition.model import (
    DEFAULT_ESCALATION,
    HumanTask,
    Role,
    State,
    StateKind,
    Transition,
)

ESCALATION_QUEUE = "escalations"
ESCALATION_NOTE = "added by statewise: a person decides each escalated item"
ESCALATION_TITLE = (
    "Escalated: retries spent, a command refused, a visit budget used up or a task overdue "
    "(the item's history says which); resolve it, abandon it, or redrive it"
)
# Outcome of the added escalation task -> the final state statewise adds for it.
ESCALATION_OUTCOMES = {"resolve": "escalation_resolved", "abandon": "escalation_abandoned"}
_ENDED_NOTE = "added by statewise: the escalation was decided ({outcome})"


def _escalation_states() -> dict[str, State]:
    task = HumanTask(
        queue=ESCALATION_QUEUE,
        result=DEFAULT_ESCALATION,
        role=Role.OPERATOR,
        title=ESCALATION_TITLE,
    )
    escalated = State(
        DEFAULT_ESCALATION,
        StateKind.HUMAN,
        transitions=tuple(
            Transition(target, on=outcome) for outcome, target in ESCALATION_OUTCOMES.items()
        ),
        task=task,
        description=ESCALATION_NOTE,
    )
    ends = {
        target: State(target, StateKind.FINAL, description=_ENDED_NOTE.format(outcome=outcome))
        for outcome, target in ESCALATION_OUTCOMES.items()
    }
    return {DEFAULT_ESCALATION: escalated, **ends}


_ADDED = _escalation_states()


def escalation_states() -> dict[str, State]:
    """The default escalation state and the final states its outcomes end in, by name."""
    return dict(_ADDED)


def added_by_statewise(state: State) -> bool:
    """Whether ``state`` is one of the escalation states statewise adds, unchanged."""
    return _ADDED.get(state.name) == state
