"""The brief's "system timeout: return to the previous state for retry" (``on_timeout``).

A command whose ``retry:`` says ``on_timeout: previous`` and whose last attempt ran out of
time does not fire ``error``: the item goes back to the state it came from and enters it
again, so that state's work runs once more and the item comes back through. Visit budgets
bound the round trips: validation asks the state for ``max_visits``, and a spent budget sends
the item to ``on_exhausted`` as on any other move. Pure: the item knows where it came from
(``Item.came_from``).
"""

from __future__ import annotations

from dataclasses import replace

from statewise.definition.model import ON_TIMEOUT_PREVIOUS, Command
from statewise.engine.builder import StepBuilder
from statewise.engine.moves import enter
from statewise.engine.result import Hop

TIMEOUT_CAUSE = "timeout"
"""The ``cause`` an audit row's error carries when the attempt ran out of time."""


def back_on_timeout(builder: StepBuilder, command: Command, hop: Hop) -> bool:
    """Send the item back to its previous state, if ``command`` says so; whether it did."""
    previous = builder.came_from
    if command.retry.on_timeout != ON_TIMEOUT_PREVIOUS or previous is None:
        return False
    if previous not in builder.definition.states:  # a migration left the old name behind
        return False
    note = f"timed out, back to {previous!r}"
    enter(builder, previous, replace(hop, note=f"{hop.note}; {note}" if hop.note else note))
    return True
