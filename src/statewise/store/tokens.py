"""API tokens and dashboard sessions in SQL, for every dialect; secrets only as hashes."""

from __future__ import annotations

import json
from collections.abc import Sequence

from statewise.definition.model import Role
from statewise.errors import NotFoundError
from statewise.store.base import Session, Token
from statewise.store.connection import Connection, Row

_COLUMNS = "id, name, role, created_at, queues, last_used_at, revoked_at"
# A token's last use is written at most this often, so reads do not become writes.
_LAST_USE_EVERY = 60.0


def _token(row: Row) -> Token:
    token_id, name, role, created, queues, used, revoked = row
    return Token(token_id, name, Role(role), created, tuple(json.loads(queues)), used, revoked)


def create_token_txn(
    db: Connection, name: str, role: Role, secret_hash: str, now: float, queues: Sequence[str]
) -> Token:
    """Insert a token by its secret's hash."""
    rows = db.execute(
        f"INSERT INTO tokens (name, role, secret_hash, queues, created_at) VALUES (?, ?, ?, ?, ?) "
        f"RETURNING {_COLUMNS}",
        (name, role.value, secret_hash, json.dumps(list(queues)), now),
    )
    return _token(rows[0])


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
