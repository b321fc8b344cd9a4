"""Alerts delivered to a real HTTP receiver on 127.0.0.1, on both stores.

Items of the review workflow enter its `review` state, which an `on_enter` rule watches; the
rounds run with an explicit clock so that the rule's window passes when the test says.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from hostile import HOSTILE_BUT_VALID_KEYS
from statewise.definition.model import AlertRule, Definition, Destination, Preset
from statewise.observe.alerting import AlertSettings, Deliverer, alert_round, retry_at
from statewise.observe.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from statewise.store import Store, open_store
from statewise.store.alerting import DeliveryKind
from statewise.worker.runner import Runner
from worker.workflows import registry, review_flow

from .receiver import Receiver

SECRET = "s3cr3t-ключ"
WINDOW = 600.0


def watched(receiver: Receiver) -> Definition:
    """review_flow telling a signed JSON hook and a chat hook when an item enters review."""
    return replace(
        review_flow(),
        alerts=(AlertRule(state="review", on_enter=True, window=WINDOW),),
        destinations={
            "hook": Destination("hook", url=f"{receiver.url}/hook", secret_env="HOOK_SECRET"),
            "chat": Destination("chat", url_env="CHAT_URL", preset=Preset.CHAT),
        },
    )


class Clock:
    """A settable clock for rounds and deliveries."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def deliverer(store: Store, clock: Clock) -> Deliverer:
    settings = AlertSettings(backoff=10.0, max_backoff=100.0, max_attempts=5, timeout=5.0)
    return Deliverer(store, settings, clock=clock, rand=lambda: 1.0)


async def started(db: str, definition: Definition) -> Store:
    """A store where every hostile key sits in `review` (score over 50)."""
    store = open_store(db)
    runner = Runner(store, [definition], registry)
    await runner.start(definition, [(key, {"score": 90}) for key in HOSTILE_BUT_VALID_KEYS])
    await runner.run(max_wait=0.0)
    return store


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Receiver:
    found = Receiver()
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("CHAT_URL", f"{found.url}/chat")
    return found


def test_one_signed_message_per_episode_and_one_when_it_resolves(
    db: str, receiver: Receiver
) -> None:
    definition = watched(receiver)
    receiver.start()

    async def main() -> None:
        store = await started(db, definition)
        other = open_store(db)  # a second process evaluating the same rules at once
        clock = Clock()
        try:
            rounds = await asyncio.gather(
                alert_round(store, [definition], deliverer(store, clock)),
                alert_round(other, [definition], deliverer(other, clock)),
            )
            assert sum(len(r.opened) for r in rounds if r is not None) == 1
            await alert_round(store, [definition], deliverer(store, clock))  # still firing
            assert sorted(r.path for r in receiver.received) == ["/chat", "/hook"]

            clock.now += WINDOW + 60  # nobody entered review within the window: resolved
            resolved = await asyncio.gather(
                alert_round(store, [definition], deliverer(store, clock)),
                alert_round(other, [definition], deliverer(other, clock)),
            )
            assert sum(len(r.resolved) for r in resolved if r is not None) == 1
            (episode,) = await store.alert_episodes()
            assert episode.resolved_at == clock.now
            assert {(d.destination, d.kind) for d in episode.deliveries} == {
                (name, kind) for name in ("hook", "chat") for kind in DeliveryKind
            }
            assert all(d.delivered_at is not None and d.attempts == 1 for d in episode.deliveries)
            assert (await store.alert_summary()).firing == 0
        finally:
            await other.close()
            await store.close()

    asyncio.run(main())
    hooks = [r for r in receiver.received if r.path == "/hook"]
    chats = [r for r in receiver.received if r.path == "/chat"]
    assert [h.json["status"] for h in hooks] == ["firing", "resolved"]
    assert [c.json["text"].split("]")[0] for c in chats] == ["[FIRING", "[resolved"]
    for hook in hooks:
        timestamp = hook.headers[TIMESTAMP_HEADER]
        signature = hook.headers[SIGNATURE_HEADER]
        sent_at = float(timestamp)
        assert verify(SECRET.encode(), timestamp, hook.body, signature, sent_at + 1)
        assert not verify(SECRET.encode(), timestamp, hook.body, signature, sent_at + 301)  # replay
        assert not verify(b"wrong", timestamp, hook.body, signature, sent_at)
        assert not verify(SECRET.encode(), timestamp, hook.body + b" ", signature, sent_at)
        later = str(int(timestamp) + 1)  # a replayed body under a fresher timestamp
        assert not verify(SECRET.encode(), later, hook.body, signature, sent_at + 1)
    opened = hooks[0].json
    assert opened["alert"] == "entered"
    assert (opened["workflow"], opened["state"], opened["threshold"]) == ("review", "review", 1)
    assert opened["observed"] == len(HOSTILE_BUT_VALID_KEYS)
    assert sorted(opened["detail"]["keys"]) == sorted(HOSTILE_BUT_VALID_KEYS)
    assert opened["links"]["items"].endswith("/dashboard/items?workflow=review&state=review")
    assert "naïve-日本" in chats[0].json["text"]
    assert SIGNATURE_HEADER not in chats[0].headers  # the chat hook names no secret


def test_retries_with_backoff_while_the_receiver_is_down_and_after_a_restart(
    db: str, receiver: Receiver
) -> None:
    definition = replace(
        watched(receiver),
        destinations={"hook": watched(receiver).destinations["hook"]},
    )

    async def main() -> None:
        store = await started(db, definition)
        clock = Clock()
        start = clock.now
        try:
            await alert_round(store, [definition], deliverer(store, clock))  # port closed
            (delivery,) = (await store.alert_episodes())[0].deliveries
            assert delivery.attempts == 1 and delivery.delivered_at is None
            assert delivery.last_status is None and delivery.last_error
            assert delivery.next_attempt_at == pytest.approx(start + 10)
            assert (await store.alert_summary()).failing == 1

            clock.now = start + 5  # not due yet: no attempt
            await alert_round(store, [definition], deliverer(store, clock))
            (delivery,) = (await store.alert_episodes())[0].deliveries
            assert delivery.attempts == 1

            receiver.status = 503
            receiver.start()
            clock.now = start + 10
            await alert_round(store, [definition], deliverer(store, clock))
            (delivery,) = (await store.alert_episodes())[0].deliveries
            assert (delivery.attempts, delivery.last_status) == (2, 503)
            assert delivery.next_attempt_at == pytest.approx(start + 10 + 20)
        finally:
            await store.close()

        # The process restarts: a new store connection and sender carry on with the schedule.
        receiver.status = 200
        store = open_store(db)
        try:
            clock.now = start + 30
            await alert_round(store, [definition], deliverer(store, clock))
            (delivery,) = (await store.alert_episodes())[0].deliveries
            assert delivery.attempts == 3 and delivery.delivered_at == clock.now
            assert delivery.last_error is None and delivery.next_attempt_at is None
            assert (await store.alert_summary()).failing == 0
        finally:
            await store.close()
        receiver.stop()

    asyncio.run(main())
    assert [r.json["status"] for r in receiver.received] == ["firing", "firing"]  # 503, then 200


def test_a_delivery_is_given_up_after_its_attempts(db: str, receiver: Receiver) -> None:
    definition = replace(
        watched(receiver), destinations={"hook": watched(receiver).destinations["hook"]}
    )

    async def main() -> None:
        store = await started(db, definition)
        clock = Clock()
        try:
            for _ in range(5):
                await alert_round(store, [definition], deliverer(store, clock))
                clock.now += 100  # beyond every backoff (capped at 100), within the window
            (delivery,) = (await store.alert_episodes())[0].deliveries
            assert delivery.attempts == 5 and delivery.next_attempt_at is None
            assert delivery.last_error is not None
            assert delivery.last_error.startswith("gave up after 5 attempts")
            assert (await store.alert_summary()).failing == 1  # given up while it fires
        finally:
            await store.close()

    asyncio.run(main())


def test_an_unset_secret_is_a_failed_attempt_that_names_the_variable(
    db: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_SECRET")
    definition = replace(
        watched(receiver), destinations={"hook": watched(receiver).destinations["hook"]}
    )
    receiver.start()

    async def main() -> None:
        store = await started(db, definition)
        try:
            await alert_round(store, [definition], deliverer(store, Clock()))
            (delivery,) = (await store.alert_episodes())[0].deliveries
            assert delivery.last_error is not None and "HOOK_SECRET" in delivery.last_error
        finally:
            await store.close()

    asyncio.run(main())
    receiver.stop()
    assert receiver.received == []


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    settings = AlertSettings(backoff=10, max_backoff=60, max_attempts=6)
    assert [retry_at(n, 0, settings, lambda: 1.0) for n in range(1, 7)] == [
        10,
        20,
        40,
        60,
        60,
        None,
    ]
    assert retry_at(1, 0, settings, lambda: 0.0) == 5  # jitter: half the delay at least
