"""Search through the live service and the CLI, on both stores: a NUL is refused everywhere,
nothing changes on a refusal, and no error names the database, its host or a password.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from statewise.cli import app
from statewise.errors import StoreError
from statewise.store import open_store

from .conftest import Server, login_csrf, run_server

NUL_SEARCHES = ["\x00", "order\x00", "\x00%"]


@pytest.fixture
def server(db: str) -> Iterator[Server]:
    yield from run_server(db, items=3, workers=False)


def _untouched(server: Server) -> None:
    with server.client("viewer") as viewer:
        listed = viewer.get("/api/items").json()
    assert listed["total"] == 3
    assert {item["status"] for item in listed["items"]} == {"waiting"}


@pytest.mark.parametrize("q", NUL_SEARCHES)
def test_the_api_refuses_a_nul_in_q_and_a_bulk_cancel_changes_nothing(
    server: Server, q: str
) -> None:
    with server.client("operator") as ops:
        listed = ops.get("/api/items", params={"q": q})
        assert listed.status_code == 422 and listed.json()["error"] == "invalid_input"
        assert "NUL" in listed.json()["message"]
        cancel = {"operation": "cancel", "reason": "x", "q": q, "dry_run": False}
        refused = ops.post("/api/bulk", json=cancel)
        assert refused.status_code == 422 and "NUL" in refused.json()["message"]
    _untouched(server)


def test_the_dashboard_refuses_a_nul_in_the_search_and_in_a_bulk_form(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        csrf = login_csrf(client)
        client.post("/dashboard/login", data={"token": server.tokens["operator"], "csrf": csrf})
        page = client.get("/dashboard/items", params={"q": "\x00"})
        assert page.status_code == 200 and "NUL" in page.text and "order-0" not in page.text
        form = client.get("/dashboard/bulk").text
        session_csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert session_csrf
        posted = client.post(
            "/dashboard/bulk",
            data={
                "csrf": session_csrf[1],
                "q": "\x00",
                "operation": "cancel",
                "reason": "x",
                "apply": "yes",
            },
        )
        assert posted.status_code == 200 and "NUL" in posted.text
    _untouched(server)


def test_the_cli_refuses_a_nul_in_key_contains(server: Server) -> None:
    args = ["bulk", "cancel", "--reason", "x", "--key-contains", "a\x00", "--yes"]
    result = CliRunner().invoke(app, [*args, "--db", server.store_url])
    assert result.exit_code == 2 and "NUL" in result.output
    assert len(result.output.strip().splitlines()) == 1
    _untouched(server)


def test_a_store_failure_names_no_database_host_or_path(server: Server) -> None:
    """A key no store can hold (a NUL): the answer is a clear 4xx that names no database."""
    with server.client("viewer") as viewer:
        answer = viewer.get("/api/items/review/" + quote("a\x00b", safe=""))
    assert 400 <= answer.status_code < 500, answer.text
    parts = urlsplit(server.store_url)
    for secret in (parts.hostname, str(parts.port), parts.path, "5432", "sqlite", "statewise_"):
        if secret and secret != "/":
            assert secret not in answer.json()["message"], (secret, answer.json())


def test_a_password_in_a_bad_store_url_is_never_printed(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    with_password = parts._replace(
        netloc=f"app:s3cret-pw@{parts.hostname}:{parts.port or 5432}",
        query=parts.query + "&pool_max=abc",
    ).geturl()
    with pytest.raises(StoreError) as refused:
        open_store(with_password)
    assert "s3cret-pw" not in str(refused.value) and "app:***@" in str(refused.value)
    result = CliRunner().invoke(app, ["items", "--db", with_password])
    assert result.exit_code == 1 and "pool_max" in result.output
    assert "s3cret-pw" not in result.output


def test_a_password_given_as_a_query_parameter_is_never_printed(postgres_url: str) -> None:
    """libpq also takes ``?password=``; it must be hidden like the one before the ``@``."""
    parts = urlsplit(postgres_url)
    with_password = parts._replace(query=parts.query + "&password=s3cret-pw&pool_max=abc")
    with pytest.raises(StoreError) as refused:
        open_store(with_password.geturl())
    assert "s3cret-pw" not in str(refused.value) and "password=***" in str(refused.value)
    result = CliRunner().invoke(app, ["items", "--db", with_password.geturl()])
    assert result.exit_code == 1 and "pool_max" in result.output
    assert "s3cret-pw" not in result.output
