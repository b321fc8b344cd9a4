"""Browser-facing defences over a live server: security headers, login CSRF, Secure behind TLS.

The Secure-cookie tests run the real ``statewise serve`` command, so the proxy options are
checked from the command line to the cookie a browser would get.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import REVIEW_YAML, Server, _free_port, _prepare, login_csrf

PAGES = ["/dashboard/login", "/dashboard", "/static/live.js", "/api/workflows", "/nope"]


@pytest.mark.parametrize("path", PAGES)
def test_every_answer_carries_the_security_headers(server: Server, path: str) -> None:
    with httpx.Client(base_url=server.url) as client:
        answer = client.get(path)
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy


def test_the_dashboard_serves_no_inline_script_or_style(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        csrf = login_csrf(client)
        client.post("/dashboard/login", data={"token": server.tokens["operator"], "csrf": csrf})
        for path in ("/dashboard", "/dashboard/workflows/review", "/dashboard/items",
                     "/dashboard/inbox", "/dashboard/bulk", "/dashboard/items/review/order-0",
                     "/dashboard/login"):  # fmt: skip
            html = client.get(path).text
            assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
            assert not re.search(r"\son[a-z]+=|\sstyle=|<style", html), path


def test_a_sign_in_without_the_form_csrf_value_is_refused(server: Server) -> None:
    token = server.tokens["viewer"]
    with httpx.Client(base_url=server.url) as client:
        bare = client.post("/dashboard/login", data={"token": token})
        assert bare.status_code == 403 and "statewise_session" not in bare.headers.get(
            "set-cookie", ""
        )
        csrf = login_csrf(client)
        forged = client.post("/dashboard/login", data={"token": token, "csrf": csrf + "x"})
        assert forged.status_code == 403 and "sign in again" in forged.text
        signed = client.post("/dashboard/login", data={"token": token, "csrf": csrf})
        assert signed.status_code == 303 and "statewise_session" in signed.headers["set-cookie"]
        assert client.get("/dashboard").status_code == 200
        for hostile in ("é", "\x00", csrf + "ключ"):  # refused, never a server error
            assert (
                client.post("/dashboard/login", data={"token": token, "csrf": hostile}).status_code
                == 403
            )
            cancel = {"csrf": hostile, "operation": "cancel", "reason": "x"}
            item = client.post("/dashboard/items/review/order-0/operate", data=cancel)
            assert item.status_code == 403 and "CSRF" in item.text
        assert client.post("/dashboard/logout", data={"csrf": "é"}).status_code == 303
    with httpx.Client(base_url=server.url) as other_site:  # a cookie-less cross-site post
        cross = other_site.post("/dashboard/login", data={"token": token, "csrf": csrf})
        assert cross.status_code == 403


def _serve(tmp_path: Path, *options: str) -> Iterator[tuple[str, str]]:
    """``statewise serve`` on a store with a viewer token: its address and the token."""
    store_url = f"sqlite:///{tmp_path / 'serve.sqlite'}"
    token = asyncio.run(_prepare(store_url, 0, REVIEW_YAML))["viewer"]
    port = _free_port()
    command = [sys.executable, "-m", "statewise", "serve", "--db", store_url, "--no-workers"]
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port), *options], stdout=output, stderr=output, env=os.environ
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(f"{url}/dashboard/login", timeout=1)
                break
            except httpx.TransportError:
                assert time.time() < deadline, "statewise serve did not start"
                time.sleep(0.1)
        yield url, token
    finally:
        process.terminate()
        process.wait(30)


def _session_cookie(url: str, token: str) -> str:
    """The Set-Cookie of a sign-in that a TLS proxy forwarded (X-Forwarded-Proto: https)."""
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with httpx.Client(base_url=url, headers=proxied) as client:
        csrf = login_csrf(client)
        # The proxy speaks TLS to the browser; httpx would keep a Secure cookie from plain http.
        client.cookies.set("statewise_login_csrf", csrf)
        signed = client.post("/dashboard/login", data={"token": token, "csrf": csrf})
    assert signed.status_code == 303, signed.text
    found = [c for c in signed.headers.get_list("set-cookie") if "statewise_session" in c]
    assert len(found) == 1
    return found[0].lower()


def test_a_trusted_tls_proxy_gets_a_secure_session_cookie(tmp_path: Path) -> None:
    for url, token in _serve(tmp_path, "--forwarded-allow-ips", "127.0.0.1"):
        assert "; secure" in _session_cookie(url, token)


def test_an_untrusted_proxy_cannot_claim_tls(tmp_path: Path) -> None:
    for url, token in _serve(tmp_path, "--forwarded-allow-ips", "192.0.2.1"):
        assert "; secure" not in _session_cookie(url, token)


def test_alert_levels_are_attributes_the_stylesheet_colours(server: Server) -> None:
    """A state's alert level and failed items are a ``data-tone``, never an inline style."""
    from statewise.service.app import STATIC

    with httpx.Client(base_url=server.url) as client:
        csrf = login_csrf(client)
        client.post("/dashboard/login", data={"token": server.tokens["viewer"], "csrf": csrf})
        page = client.get("/dashboard/workflows/review").text
    assert 'data-figure="review/human_review/alert" data-tone="ok">ok<' in page
    css = (STATIC / "dashboard.css").read_text()
    for tone in ("ok", "warning", "firing", "critical", "failed"):
        assert f'[data-tone="{tone}"]' in css, tone


def test_alert_colours_on_the_graph_are_classes_the_stylesheet_colours() -> None:
    """The graph marks a state over its alert with a class, never an inline style."""
    from statewise.service.app import STATIC

    script = (STATIC / "graph.js").read_text()
    assert '"alert-" + node.severity' in script and '"has-failed"' in script
    assert not re.search(r"\.style\b|[\"']style[\"']|<style|innerHTML", script)
    css = (STATIC / "dashboard.css").read_text()
    for level in ("warning", "firing", "critical"):
        assert f"a.wg-node.alert-{level} rect" in css
    assert "a.wg-node.has-failed rect" in css
