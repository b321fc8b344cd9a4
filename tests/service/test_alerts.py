"""Alert rounds inside a real service: delivered to a real receiver, shown on the API and page."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from actions.conftest import REVIEW_YAML
from observe.receiver import Receiver
from service.conftest import Server, login_csrf, run_server
from statewise.observe.alerting import AlertSettings
from statewise.observe.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

SECRET = "lead-secret"
WATCHED = REVIEW_YAML.replace(
    "alerts:\n  - state: human_review\n    max_age: 4h\n",
    "alerts:\n  - state: human_review\n    on_enter: true\n    notify: [lead]\n"
    "destinations:\n  lead:\n    url_env: ALERTS_TEST_HOOK\n    secret_env: ALERTS_TEST_SECRET\n",
)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    found = Receiver()
    monkeypatch.setenv("ALERTS_TEST_HOOK", f"{found.url}/lead")
    monkeypatch.setenv("ALERTS_TEST_SECRET", SECRET)
    found.start()
    yield found
    found.stop()


@pytest.fixture
def server(db: str, receiver: Receiver) -> Iterator[Server]:
    assert "on_enter" in WATCHED
    yield from run_server(db, items=3, workflow=WATCHED, alerts=AlertSettings(every=0.2))


def test_the_service_delivers_an_episode_and_shows_it(server: Server, receiver: Receiver) -> None:
    deadline = time.time() + 20
    while not receiver.received and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.6)  # a few more rounds: the episode is still firing, nothing more is sent
    (message,) = receiver.received
    assert message.path == "/lead"
    assert verify(
        SECRET.encode(),
        message.headers[TIMESTAMP_HEADER],
        message.body,
        message.headers[SIGNATURE_HEADER],
        time.time(),
    )
    assert message.json["alert"] == "entered" and message.json["status"] == "firing"
    assert sorted(message.json["detail"]["keys"]) == ["order-0", "order-1", "order-2"]

    with server.client("viewer") as viewer:
        report = viewer.get("/api/alerts").json()
        metrics = viewer.get("/metrics").text
    assert (report["firing"], report["failing"]) == (1, 0)
    (episode,) = report["episodes"]
    assert (episode["workflow"], episode["state"], episode["status"]) == (
        "review",
        "human_review",
        "firing",
    )
    (delivery,) = episode["deliveries"]
    assert (delivery["destination"], delivery["state"], delivery["attempts"]) == (
        "lead",
        "delivered",
        1,
    )
    assert re.search(
        r'statewise_alert_deliveries_total\{destination="lead",outcome="sent"\} 1\.0', metrics
    )

    with server.client() as browser:
        assert browser.get("/api/alerts").status_code == 401
        csrf = login_csrf(browser)
        browser.post("/dashboard/login", data={"token": server.tokens["viewer"], "csrf": csrf})
        page = browser.get("/dashboard/alerts").text
    assert "<strong>1</strong> firing · <strong>0</strong> deliveries failing" in page
    assert 'href="/dashboard/items/review/order-0"' in page
    assert (
        '<tr class="delivery-delivered"><td data-label="destination">lead</td>'
        '<td data-label="message">firing</td><td data-label="state">delivered</td>'
    ) in page
