"""API tokens and dashboard sessions in SQL, for every dialect; secrets only as hashes.

A token's name is the identity that claims and the audit trail record, so no two active
(unrevoked) tokens share one: a partial unique index enforces it against any number of
writers. A revoked token's name may be given to a new token, which is how a person's secret
is rotated without losing their claims.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from statewise.definition.model import Role
from statewise.errors import ConflictError, NotFoundError
from statewise.store.base import Session, Token
from statewise.store.connection import Connection, Row

_COLUMNS = "id, name, role, created_at, queues, last_used_at, revoked_at"
# A token's last use is written at most this often, so reads do not become writes.
_LAST_USE_EVERY = 60.0
_ACTIVE_NAMES_INDEX = (
    "CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_at IS NULL"
)

logger = logging.getLogger("statewise.store")


def _token(row: Row) -> Token:
    token_id, name, role, created, queues, used, revoked = row
    return Token(token_id, name, Role(role), created, tuple(json.loads(queues)), used, revoked)


def create_token_txn(
    db: Connection, name: str, role: Role, secret_hash: str, now: float, queues: Sequence[str]
) -> Token:
    """Insert a token by its secret's hash; ConflictError when an active token has the name.

    The conflict clause makes the check and the insert one atomic step, so of two writers
    creating the same name at once exactly one wins, on every dialect.
    """
    rows = db.execute(
        f"INSERT INTO tokens (name, role, secret_hash, queues, created_at) VALUES (?, ?, ?, ?, ?) "
        f"ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING RETURNING {_COLUMNS}",
        (name, role.value, secret_hash, json.dumps(list(queues)), now),
    )
    if not rows:
        raise ConflictError(
            f"an active token is already named {name!r}; a name is an identity for claims and "
            "the audit trail: choose another, or revoke that token first"
        )
    return _token(rows[0])


def unique_active_names_txn(db: Connection) -> None:
    """Migration: rename all but the oldest active token sharing a name, then enforce uniqueness.

    Renaming (to ``name#id``) instead of revoking keeps every token working; the oldest keeps
    the name and so the claims recorded under it. Each rename is logged as a warning, which
    ``statewise db upgrade`` and any opener print.
    """
    rows = db.execute("SELECT id, name FROM tokens WHERE revoked_at IS NULL ORDER BY id")
    taken = {name for _, name in rows}
    holders: dict[str, int] = {}
    for token_id, name in rows:
        if name not in holders:
            holders[name] = token_id
            continue
        renamed = _free_name(f"{name}#{token_id}", taken)
        taken.add(renamed)
        db.execute("UPDATE tokens SET name = ? WHERE id = ?", (renamed, token_id))
        logger.warning(
            "token %s renamed from %r to %r: active token names must be unique (token %s keeps %r)",
            token_id,
            name,
            renamed,
            holders[name],
            name,
        )
    db.execute(_ACTIVE_NAMES_INDEX)


def _free_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or with the first ``-n`` suffix no active token holds."""
    candidates = (wanted if n == 1 else f"{wanted}-{n}" for n in range(1, len(taken) + 2))
    return next(name for name in candidates if name not in taken)


def find_token_txn(db: Connection, secret_hash: str, now: float) -> Token | None:
    """The unrevoked token with this hash, its last use refreshed now and then."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM tokens WHERE secret_hash = ? AND revoked_at IS NULL",
        (secret_hash,),
    )
    if not rows:
        return None
    token = _token(rows[0])
    if token.last_used_at is None or now - token.last_used_at > _LAST_USE_EVERY:
        db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, token.id))
    return token


def list_tokens_txn(db: Connection) -> list[Token]:
    """Every token, oldest first."""
    return [_token(row) for row in db.execute(f"SELECT {_COLUMNS} FROM tokens ORDER BY id")]


def revoke_token_txn(db: Connection, token_id: int, now: float) -> Token:
    """Revoke a token and end its sessions."""
    rows = db.execute(
        f"UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING {_COLUMNS}",
        (now, token_id),
    )
    if not rows:
        raise NotFoundError(f"there is no token {token_id}")
    db.execute("DELETE FROM sessions WHERE token_id = ?", (token_id,))
    return _token(rows[0])


def create_session_txn(
    db: Connection, session_hash: str, token_id: int, csrf: str, expires_at: float
) -> None:
    """Remember a sign-in."""
    db.execute(
        "INSERT INTO sessions (session_hash, token_id, csrf, expires_at) VALUES (?, ?, ?, ?)",
        (session_hash, token_id, csrf, expires_at),
    )


def find_session_txn(db: Connection, session_hash: str, now: float) -> Session | None:
    """An unexpired session of an unrevoked token."""
    rows = db.execute(
        f"SELECT s.csrf, s.expires_at, {', '.join('t.' + c for c in _COLUMNS.split(', '))} "
        "FROM sessions s JOIN tokens t ON t.id = s.token_id "
        "WHERE s.session_hash = ? AND s.expires_at > ? AND t.revoked_at IS NULL",
        (session_hash, now),
    )
    if not rows:
        return None
    csrf, expires_at, *token = rows[0]
    return Session(_token(tuple(token)), csrf, expires_at)


def delete_session_txn(db: Connection, session_hash: str) -> None:
    """Sign out."""
    db.execute("DELETE FROM sessions WHERE session_hash = ?", (session_hash,))
