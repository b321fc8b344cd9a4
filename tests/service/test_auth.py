"""Every endpoint of the OpenAPI spec tried with no token, a wrong token and each role."""

from __future__ import annotations

import json
import logging
import re

import pytest

from statewise.definition.model import Role

from .conftest import Server

# The least role each endpoint needs; every route of the spec must be listed here.
NEEDS = {
    ("GET", "/api/workflows"): Role.VIEWER,
    ("GET", "/api/workflows/{name}"): Role.VIEWER,
    ("GET", "/api/workflows/{name}/diagram"): Role.VIEWER,
    ("POST", "/api/workflows/{name}/migrate"): Role.OPERATOR,
    ("POST", "/api/items"): Role.OPERATOR,
    ("POST", "/api/items/batch"): Role.OPERATOR,
    ("GET", "/api/items"): Role.VIEWER,
    ("GET", "/api/items/{workflow}/{key}"): Role.VIEWER,
    ("GET", "/api/items/{workflow}/{key}/history"): Role.VIEWER,
    ("POST", "/api/items/{workflow}/{key}/events"): Role.OPERATOR,
    ("POST", "/api/items/{workflow}/{key}/redrive"): Role.OPERATOR,
    ("POST", "/api/bulk"): Role.OPERATOR,
    ("GET", "/api/tasks"): Role.VIEWER,
    ("GET", "/api/tasks/{task_id}"): Role.VIEWER,
    ("POST", "/api/tasks/{task_id}/claim"): Role.REVIEWER,
    ("POST", "/api/tasks/{task_id}/release"): Role.REVIEWER,
    ("POST", "/api/tasks/{task_id}/decide"): Role.REVIEWER,
    ("GET", "/api/costs"): Role.VIEWER,
    ("GET", "/api/alerts"): Role.VIEWER,
    ("GET", "/api/quality"): Role.VIEWER,
    ("POST", "/api/simulate"): Role.OPERATOR,
    ("GET", "/api/tokens"): Role.ADMIN,
    ("POST", "/api/tokens"): Role.ADMIN,
    ("DELETE", "/api/tokens/{token_id}"): Role.ADMIN,
    ("POST", "/api/prune"): Role.ADMIN,
    ("GET", "/metrics"): Role.VIEWER,
}
SAMPLE = {
    "name": "review",
    "workflow": "review",
    "key": "order-0",
    "task_id": "1",
    "token_id": "99",
}


def _routes(server: Server) -> list[tuple[str, str]]:
    with server.client() as client:
        spec = client.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if path.startswith(("/api", "/metrics"))
    ]


def _call(server: Server, role: str | None, method: str, path: str, token: str | None = None):  # type: ignore[no-untyped-def]
    url = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path)
    with server.client(role) as client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.request(method, url, headers=headers, json={} if method != "GET" else None)


def test_every_route_is_in_the_role_table(server: Server) -> None:
    assert sorted(_routes(server)) == sorted(NEEDS)


@pytest.mark.parametrize("route", sorted(NEEDS))
def test_each_route_refuses_strangers_and_lower_roles(
    server: Server, route: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    method, path = route
    caplog.set_level(logging.DEBUG)
    anonymous = _call(server, None, method, path)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"
    wrong = _call(server, None, method, path, token="sw_not-a-real-token")
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["message"]
    for role in Role:
        answer = _call(server, role.value, method, path)
        if role.allows(NEEDS[route]):
            assert answer.status_code not in (401, 403), (role, answer.text)
        else:
            assert answer.status_code == 403, (role, answer.text)
            assert f"needs the {NEEDS[route].value} role" in answer.json()["message"]
        assert server.tokens[role.value] not in answer.text
    logged = caplog.text
    for secret in server.tokens.values():
        assert secret not in logged


def test_a_revoked_token_stops_working_at_once(server: Server) -> None:
    with server.client("admin") as admin:
        created = admin.post("/api/tokens", json={"name": "temp", "role": "viewer"})
        assert created.status_code == 201
        secret, token_id = created.json()["secret"], created.json()["id"]
        listed = admin.get("/api/tokens").json()
        assert all("secret" not in token for token in listed)
        with server.client() as anyone:
            headers = {"Authorization": f"Bearer {secret}"}
            assert anyone.get("/api/workflows", headers=headers).status_code == 200
            assert admin.delete(f"/api/tokens/{token_id}").status_code == 200
            assert anyone.get("/api/workflows", headers=headers).status_code == 401


def test_a_name_held_by_an_active_token_cannot_be_given_to_a_second_one(server: Server) -> None:
    with server.client("admin") as admin, server.client("reviewer") as first:
        task = first.get("/api/tasks").json()[0]["id"]
        assert first.post(f"/api/tasks/{task}/claim").status_code == 200
        before = admin.get("/api/tokens").json()

        second = admin.post("/api/tokens", json={"name": "reviewer", "role": "reviewer"})

        assert second.status_code == 409, second.text
        assert second.json()["error"] == "conflict"
        assert "already named 'reviewer'" in second.json()["message"]
        assert admin.get("/api/tokens").json() == before


def test_a_revoked_name_is_reused_to_rotate_a_secret_and_keeps_its_claims(server: Server) -> None:
    with server.client("admin") as admin, server.client("reviewer") as old:
        task = old.get("/api/tasks").json()[0]["id"]
        assert old.post(f"/api/tasks/{task}/claim").status_code == 200
        (held,) = [t for t in admin.get("/api/tokens").json() if t["name"] == "reviewer"]
        assert admin.delete(f"/api/tokens/{held['id']}").status_code == 200

        rotated = admin.post("/api/tokens", json={"name": "reviewer", "role": "reviewer"})
        assert rotated.status_code == 201, rotated.text
        headers = {"Authorization": f"Bearer {rotated.json()['secret']}"}
        decided = admin.post(
            f"/api/tasks/{task}/decide",
            json={"outcome": "approve", "data": {"risk": "low"}},
            headers=headers,
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["task"]["decided_by"] == "token:reviewer"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "cannot be empty or blank"),
        ("   ", "cannot be empty or blank"),
        ("reviewer ", "cannot start or end with whitespace"),
        ("rev\x00ed", "cannot contain control characters (it has U+0000)"),
        ("rev\x1fed", "cannot contain control characters (it has U+001F)"),
        ("rev\u200bed", "cannot contain invisible format characters (it has U+200B)"),
        ("rev\u202eder", "cannot contain invisible format characters (it has U+202E)"),
        ("re\u0301ved", "must be in composed Unicode (NFC), as 'réved'"),
        ("x" * 101, "at most 100 characters, not 101"),
    ],
)
def test_a_token_name_that_would_blur_an_identity_is_refused(
    server: Server, name: str, problem: str
) -> None:
    with server.client("admin") as admin:
        before = admin.get("/api/tokens").json()
        answer = admin.post("/api/tokens", json={"name": name, "role": "viewer"})

        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "invalid_request"
        assert problem in answer.json()["message"]
        assert admin.get("/api/tokens").json() == before


def test_names_with_url_characters_and_non_ascii_are_identities_of_their_own(
    server: Server,
) -> None:
    with server.client("admin") as admin:
        for name in ("rev%41ed", "rev/ed?x", "révéd", "reviewer2"):
            created = admin.post("/api/tokens", json={"name": name, "role": "viewer"})
            assert created.status_code == 201 and created.json()["name"] == name
        assert admin.post("/api/tokens", json={"name": "révéd", "role": "admin"}).status_code == 409


@pytest.mark.parametrize(
    ("queues", "body", "problem"),
    [
        (["billing\x00"], None, "queue 'billing\\x00' is not a name a workflow can give a queue"),
        ([""], None, "queue '' is not a name a workflow can give a queue"),
        (["Billing"], None, "queue 'Billing' is not a name a workflow can give a queue"),
        (["b" * 101], None, "at most 100 characters"),
        (["q"] * 101, None, "at most 100 queues, not 101"),
        (None, '{"name": "rev_q", "role": "reviewer", "queues": ["\\ud800"]}', "queue '\\ud800'"),
    ],
)
def test_a_token_limited_to_a_queue_no_workflow_can_have_is_refused(
    server: Server, queues: list[str] | None, body: str | None, problem: str
) -> None:
    """A typo'd queue leaves a reviewer an empty inbox; a surrogate one broke the answer."""
    raw = body or json.dumps({"name": "rev_q", "role": "reviewer", "queues": queues})
    with server.client("admin") as admin:
        before = admin.get("/api/tokens").json()
        answer = admin.post(
            "/api/tokens", content=raw, headers={"content-type": "application/json"}
        )

        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "invalid_request"
        assert problem in answer.json()["message"]
        assert admin.get("/api/tokens").json() == before
