"""Test a workflow without waiting and without models: ``pytest_plugins = ["statewise.testing"]``.

The ``workflow_test`` fixture makes a :class:`WorkflowTest`: the workflow's items on a real
SQLite file in the test's ``tmp_path``, run in-process by the real runner, with

- a virtual clock: ``flow.advance(hours=72)`` fires every due time, reminder and timer on the way,
  in time order;
- scripted agents (``flow.agent("classify", {...})``) and fake commands
  (``flow.command("send_email", {"sent": True})``, or an exception to raise);
- people: ``flow.start``, ``flow.decide`` (a task, with outcome, form data, comment, actor),
  ``flow.send`` (an event);
- ``webhook_receiver()``: a real local HTTP server that records the signed webhooks states
  send (and can refuse the first N), with the URL variables pointed at it;
- assertions that show the item's actual path and audit trail when they fail:
  ``assert_path``, ``assert_state``, ``assert_context``, ``assert_audit``.

The plugin is not registered as a pytest entry point: it loads only where a conftest asks.
"""

from statewise.observe.receiver import Received, Receiver, webhook_receiver
from statewise.testing.clock import VirtualClock
from statewise.testing.fixtures import MakeWorkflowTest, workflow_test
from statewise.testing.harness import WorkflowTest
from statewise.testing.scripts import Reply

__all__ = [
    "MakeWorkflowTest",
    "Received",
    "Receiver",
    "Reply",
    "VirtualClock",
    "WorkflowTest",
    "webhook_receiver",
    "workflow_test",
]
