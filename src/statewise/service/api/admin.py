"""Costs and tokens: what models cost, and who may use the service."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from statewise.service.api.models import NewToken, RowId
from statewise.service.auth import Admin, Context, Viewer, hash_secret, new_secret
from statewise.store.base import Token

router = APIRouter(prefix="/api")


@router.get(
    "/costs", summary="Model usage and cost by workflow, state, agent and model", tags=["costs"]
)
async def costs(ctx: Context, _: Viewer, workflow: str | None = None) -> list[dict[str, Any]]:
    return [asdict(row) for row in await ctx.store.costs(workflow)]


def token_json(token: Token) -> dict[str, Any]:
    """A token without its secret (the store has none to give)."""
    return {**asdict(token), "role": token.role.value, "queues": list(token.queues)}


@router.get("/tokens", summary="Every token, revoked ones included", tags=["tokens"])
async def list_tokens(ctx: Context, _: Admin) -> list[dict[str, Any]]:
    return [token_json(token) for token in await ctx.store.list_tokens()]


@router.post(
    "/tokens",
    summary="Create a token; its secret is in this answer only",
    tags=["tokens"],
    status_code=201,
)
async def create_token(body: NewToken, ctx: Context, _: Admin) -> dict[str, Any]:
    secret = new_secret()
    token = await ctx.store.create_token(
        body.name, body.role, hash_secret(secret), ctx.clock(), body.queues
    )
    return {**token_json(token), "secret": secret}


@router.delete("/tokens/{token_id}", summary="Revoke a token and end its sessions", tags=["tokens"])
async def revoke_token(token_id: RowId, ctx: Context, _: Admin) -> dict[str, Any]:
    return token_json(await ctx.store.revoke_token(token_id, ctx.clock()))
