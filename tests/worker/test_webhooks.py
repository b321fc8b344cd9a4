"""A state's webhook: a signed POST through the command outbox, against a real local receiver.

One receiver serves the module (a server per test costs seconds); each test clears what it
recorded and says how many requests it refuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import unquote

import pytest

from hostile import HOSTILE_BUT_VALID_KEYS
from statewise.contract import CommandRegistry
from statewise.definition import loads
from statewise.definition.model import Definition
from statewise.observe.delivery import SIGNATURE_HEADER
from statewise.store import open_store
from statewise.testing import MakeWorkflowTest, Receiver, webhook_receiver
from statewise.worker import Runner
from statewise.worker.webhooks import idempotency_key, register_webhooks

SECRET = "s3cret-ü"
YAML = """
workflow: publish
version: 1
input: [copy]
destinations:
  cms: {url_env: URL_ENV, secret_env: SW_TEST_CMS_SECRET}
states:
  start:
    kind: initial
    transitions: [{to: send_to_cms}]
  send_to_cms:
    webhook: {to: cms, payload: copy, result: cms_delivery}
    retry: {attempts: 4, backoff: BACKOFF, jitter: 0}
    transitions:
      - to: published
      - on: error
        to: publish_failed
  published: {kind: final}
  publish_failed: {kind: final}
"""


def publish(url_env: str = "SW_TEST_CMS_URL", backoff: str = "1s") -> Definition:
    return loads(YAML.replace("URL_ENV", url_env).replace("BACKOFF", backoff))


@pytest.fixture(scope="module")
def module_receiver() -> Iterator[Receiver]:
    with webhook_receiver(["SW_TEST_CMS_URL"], env={"SW_TEST_CMS_SECRET": SECRET}) as receiver:
        yield receiver


@pytest.fixture
def receiver(module_receiver: Receiver) -> Receiver:
    module_receiver.requests.clear()
    module_receiver.fail(0)
    return module_receiver


def test_a_delivery_is_signed_and_its_answer_is_the_states_result(
    workflow_test: MakeWorkflowTest, receiver: Receiver
) -> None:
    flow = workflow_test(publish())
    flow.start("p-1", {"copy": {"title": "Spring", "body": "New shoes"}})

    flow.assert_path("p-1", ["start", "send_to_cms", "published"])
    (got,) = receiver.received_by("sw_test_cms_url")
    key = "publish/p-1/send_to_cms/1"
    assert got.json == {
        "workflow": "publish",
        "version": 1,
        "key": "p-1",
        "state": "send_to_cms",
        "event_id": key,
        "payload": {"title": "Spring", "body": "New shoes"},
    }
    assert got.idempotency_key == key
    assert got.signed_by(SECRET) and not got.signed_by("other")
    assert got.headers[SIGNATURE_HEADER].startswith("sha256=")
    flow.assert_context(
        "p-1",
        {
            "cms_delivery": {
                "status": 200,
                "idempotency_key": key,
                "response": {"received": True, "system": "sw_test_cms_url"},
            }
        },
    )


def test_a_receiver_down_is_retried_with_the_same_idempotency_key(
    workflow_test: MakeWorkflowTest, receiver: Receiver
) -> None:
    receiver.fail(2, 503)
    flow = workflow_test(publish())
    flow.start("p-2", {"copy": "text"})
    flow.assert_state("p-2", "send_to_cms")
    flow.advance(seconds=1)
    flow.advance(seconds=2)

    flow.assert_path("p-2", ["start", "send_to_cms", "published"])
    assert [r.status for r in receiver.requests] == [503, 503, 200]
    assert {r.idempotency_key for r in receiver.requests} == {"publish/p-2/send_to_cms/1"}
    assert all(r.signed_by(SECRET) for r in receiver.requests)
    failed = [r for r in flow.history("p-2") if r.event == "failed"]
    assert [(r.attempt, r.error and r.error["kind"]) for r in failed] == [
        (1, "transient"),
        (2, "transient"),
    ]
    assert failed[0].error is not None and "HTTP 503" in failed[0].error["message"]


def test_a_refusal_is_permanent_and_takes_the_error_transition(
    workflow_test: MakeWorkflowTest, receiver: Receiver
) -> None:
    receiver.fail(1, 422)
    flow = workflow_test(publish())
    flow.start("p-3", {"copy": "text"})

    flow.assert_path("p-3", ["start", "send_to_cms", "publish_failed"])
    assert len(receiver.requests) == 1
    row = flow.assert_audit("p-3", to_state="publish_failed")
    assert row.error is not None and row.error["kind"] == "permanent"
    assert "HTTP 422" in row.error["message"] and "received" in row.error["message"]


def test_an_unset_url_variable_is_a_permanent_error_naming_it(
    workflow_test: MakeWorkflowTest, receiver: Receiver
) -> None:
    flow = workflow_test(publish(url_env="SW_TEST_NOWHERE_URL"))
    flow.start("p-4", {"copy": "text"})

    row = flow.assert_audit("p-4", to_state="publish_failed")
    assert row.error is not None and row.error["kind"] == "permanent"
    assert "SW_TEST_NOWHERE_URL" in row.error["message"]
    assert receiver.requests == []


@pytest.mark.parametrize("key", [*HOSTILE_BUT_VALID_KEYS, "Ünïcødé/%00?"])
def test_hostile_keys_and_payloads_arrive_intact(
    workflow_test: MakeWorkflowTest, receiver: Receiver, key: str
) -> None:
    copy = {"t": "a/b?c=%41&d\x00e", "naïve": "日本", "n": 2**63 - 1}
    flow = workflow_test(publish())
    flow.start(key, {"copy": copy})

    flow.assert_state(key, "published")
    (got,) = receiver.deliveries
    header = got.idempotency_key
    assert header == idempotency_key("publish", key, "send_to_cms", 1)
    assert header.isascii() and header.count("/") == 3
    assert [unquote(part) for part in header.split("/")] == ["publish", key, "send_to_cms", "1"]
    assert got.json["key"] == key and got.json["payload"] == copy
    assert got.signed_by(SECRET)


def test_two_writers_on_one_store_deliver_once_per_visit(db: str, receiver: Receiver) -> None:
    """A runner, and a second writer starting items meanwhile (on PostgreSQL a second runner).

    The receiver refuses the first two requests, so retries race the other writer too.
    """
    definition = publish(backoff="0.01")
    receiver.fail(2, 503)
    postgres = not db.endswith(".sqlite")
    first, second = open_store(db), open_store(db)

    async def main() -> list[object]:
        registry = CommandRegistry()
        register_webhooks(registry, [definition], first)
        runner = Runner(first, [definition], registry)
        other = Runner(second, [definition], registry)
        await runner.start(definition, [(f"a-{n}", {"copy": n}) for n in range(3)])

        async def second_writer() -> None:
            await other.start(definition, [(f"b-{n}", {"copy": n}) for n in range(3)])
            if postgres:
                await other.run(max_wait=0.3)

        await asyncio.gather(runner.run(max_wait=0.3), second_writer())
        await runner.run(max_wait=0.3)  # what the second writer started after the first idled
        stuck = await first.stuck_items()
        await first.close()
        await second.close()
        return list(stuck)

    assert asyncio.run(main()) == []
    keys = [r.idempotency_key for r in receiver.deliveries]
    expected = [f"publish/{p}-{n}/send_to_cms/1" for p in "ab" for n in range(3)]
    assert sorted(keys) == expected  # every visit delivered, none twice
    assert len(receiver.requests) == len(expected) + 2


def test_a_timed_out_webhook_can_send_the_item_back_to_its_previous_state(
    workflow_test: MakeWorkflowTest, receiver: Receiver
) -> None:
    receiver.fail(1, 503, delay=1.0)  # longer than the state's timeout
    definition = loads(
        YAML.replace("URL_ENV", "SW_TEST_CMS_URL").replace(
            "retry: {attempts: 4, backoff: BACKOFF, jitter: 0}",
            "retry: {attempts: 1, timeout: 0.3, on_timeout: previous}\n    max_visits: 2",
        )
    )
    flow = workflow_test(definition)
    flow.start("p-5", {"copy": "text"})

    flow.assert_path("p-5", ["start", "send_to_cms", "start", "send_to_cms", "published"])
    back = flow.assert_audit("p-5", from_state="send_to_cms", to_state="start")
    assert back.error is not None and back.error["cause"] == "timeout"
    keys = [r.idempotency_key for r in receiver.requests]
    assert keys == ["publish/p-5/send_to_cms/1", "publish/p-5/send_to_cms/2"]  # a new visit
