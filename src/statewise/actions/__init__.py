"""What people do to items, shared by the command line, the HTTP API and the dashboard.

Inspecting an item, deciding human tasks, redriving and bulk operations: each is written once
here, over an ``ItemWriter`` and its store, so every door into statewise behaves the same and
goes through the same fence as every other writer.
"""

from statewise.actions.bulk import BulkReport, bulk
from statewise.actions.inspection import ItemCosts, ItemView, inspect_item, item_view_json
from statewise.actions.principal import Principal
from statewise.actions.quality import agent_quality
from statewise.actions.redrive import failed_state, redrive
from statewise.actions.tasks import TaskDesk

__all__ = [
    "BulkReport",
    "ItemCosts",
    "ItemView",
    "Principal",
    "TaskDesk",
    "agent_quality",
    "bulk",
    "failed_state",
    "inspect_item",
    "item_view_json",
    "redrive",
]
