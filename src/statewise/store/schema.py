"""The tables of both dialects as numbered migrations, and the one loop that applies them.

A migration is a function over a ``Connection``, so a step can compute data in Python (the
content hashes of definitions stored before hashes were kept). Migration N is
``MIGRATIONS[N - 1]``; a database records the last one applied (SQLite: ``user_version``;
PostgreSQL: the ``schema_migrations`` table) and each opener applies the rest under a lock.
Never edit a released migration: add the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from statewise.errors import StoreError
from statewise.store.connection import Connection
from statewise.store.tally import HISTOGRAM, backfill_counts_txn, backfill_flows_txn
from statewise.store.tokens import unique_active_names_txn
from statewise.store.workflows import fill_content_hashes_txn, fill_escalations_txn

Migration = Callable[[Connection], None]


def _sql(*statements: str) -> Migration:
    def apply(db: Connection) -> None:
        for statement in statements:
            db.execute(statement)

    return apply


def _then(*steps: Migration) -> Migration:
    def apply(db: Connection) -> None:
        for step in steps:
            step(db)

    return apply


# What each step produced (a command's result, an event's data, a decision) is kept on its
# audit row: small outputs inline in ``history.output``; larger ones once per item in
# ``payloads``, which the row names by ``output_hash``, so a loop or a join that sees the same
# large result again never stores a second copy.
_OUTPUTS_SQLITE = (
    "ALTER TABLE history ADD COLUMN output TEXT",
    "ALTER TABLE history ADD COLUMN output_hash TEXT",
    "CREATE TABLE payloads (item_id INTEGER NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (item_id, hash)) WITHOUT ROWID",
)
_OUTPUTS_POSTGRES = (
    "ALTER TABLE history ADD COLUMN output TEXT",
    "ALTER TABLE history ADD COLUMN output_hash TEXT",
    "CREATE TABLE payloads (item_id BIGINT NOT NULL, hash TEXT NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (item_id, hash))",
)

# On SQLite, payloads become a rowid table. A WITHOUT ROWID table keeps at most about 1 KB of
# a row in its b-tree page and spills the rest into an overflow page of its own, so every
# payload just over 1 KB took a whole 4 KiB page; a rowid table keeps rows up to about 4 KB in
# the page. (PostgreSQL keeps large values out of line and compressed already.)
_PAYLOADS_IN_PAGES_SQLITE = (
    "CREATE TABLE payloads_in_pages (item_id INTEGER NOT NULL, hash TEXT NOT NULL, "
    "body TEXT NOT NULL, PRIMARY KEY (item_id, hash))",
    "INSERT INTO payloads_in_pages (item_id, hash, body) SELECT item_id, hash, body FROM payloads",
    "DROP TABLE payloads",
    "ALTER TABLE payloads_in_pages RENAME TO payloads",
)

# What an item has spent on model calls, by state (``codec.encode_spent``), for its budgets;
# NULL for the many items that never call a model. The partial index finds the spending
# items for ``statewise costs --budgets`` without reading the others.
_SPENT = (
    "ALTER TABLE items ADD COLUMN spent TEXT",
    "CREATE INDEX items_spending ON items (workflow, id) WHERE spent IS NOT NULL",
)

# The events an item keeps because they arrived before a state that accepts them
# (``codec.encode_buffer``); NULL for the many items that keep none.
_BUFFER = ("ALTER TABLE items ADD COLUMN buffer TEXT",)


def _tally(integer: str, real: str, clustered: str = "") -> Migration:
    """The counts and per-minute flows commits keep (``store.tally``), filled from what is.

    ``counts_by_state`` is keyed for the sums by (workflow, ...); ``flows_by_minute`` leads
    with the minute, so a window is one range of its key (on SQLite the key is the table,
    ``clustered``, so a range reads no second b-tree). The escalation state of each
    stored version lets a commit tell an escalation without loading definitions.
    """
    histogram = ", ".join(f"{name} {integer} NOT NULL" for name in HISTOGRAM)
    return _then(
        _sql(
            f"CREATE TABLE counts_by_state (workflow TEXT NOT NULL, version {integer} NOT NULL, "
            f"state TEXT NOT NULL, status TEXT NOT NULL, shard {integer} NOT NULL, "
            f"count {integer} NOT NULL, PRIMARY KEY (workflow, version, state, status, shard))"
            + clustered,
            f"CREATE TABLE flows_by_minute (minute {integer} NOT NULL, workflow TEXT NOT NULL, "
            f"state TEXT NOT NULL, shard {integer} NOT NULL, entered {integer} NOT NULL, "
            f"departed {integer} NOT NULL, failures {integer} NOT NULL, "
            f"retries {integer} NOT NULL, cost {real}, dwell_sum {real} NOT NULL, "
            f"finished {integer} NOT NULL, escalated {integer} NOT NULL, "
            f"failed {integer} NOT NULL, cancelled {integer} NOT NULL, {histogram}, "
            "PRIMARY KEY (minute, workflow, state, shard))" + clustered,
            "ALTER TABLE workflows ADD COLUMN escalation TEXT",
        ),
        fill_escalations_txn,
        backfill_counts_txn,
        backfill_flows_txn,
    )


SQLITE_MIGRATIONS: tuple[Migration, ...] = (
    _sql(
        "CREATE TABLE workflows (name TEXT NOT NULL, version INTEGER NOT NULL, "
        "source TEXT NOT NULL, file TEXT NOT NULL, commands TEXT NOT NULL, "
        "created_at REAL NOT NULL, PRIMARY KEY (name, version))",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, workflow TEXT NOT NULL, "
        "version INTEGER NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL, "
        "status TEXT NOT NULL, entered_at REAL NOT NULL, created_at REAL NOT NULL, "
        "updated_at REAL NOT NULL, seq INTEGER NOT NULL, attempt INTEGER NOT NULL, "
        "retrying INTEGER NOT NULL, visits TEXT NOT NULL, branches TEXT, "
        "UNIQUE (workflow, key))",
        "CREATE INDEX items_by_state ON items (workflow, state, entered_at)",
        "CREATE INDEX items_by_status ON items (status, entered_at)",
        "CREATE INDEX items_by_key ON items (key)",
        "CREATE TABLE context (item_id INTEGER NOT NULL, path TEXT NOT NULL, "
        "value TEXT NOT NULL, PRIMARY KEY (item_id, path)) WITHOUT ROWID",
        "CREATE TABLE history (item_id INTEGER NOT NULL, seq INTEGER NOT NULL, "
        "at REAL NOT NULL, from_state TEXT, to_state TEXT NOT NULL, event TEXT NOT NULL, "
        "detail TEXT NOT NULL, PRIMARY KEY (item_id, seq)) WITHOUT ROWID",
        "CREATE TABLE timers (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, "
        "due_at REAL NOT NULL, event TEXT NOT NULL, lease_owner TEXT, lease_until REAL)",
        "CREATE INDEX timers_by_due ON timers (due_at)",
        "CREATE INDEX timers_by_item ON timers (item_id)",
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, "
        "effect TEXT NOT NULL, available_at REAL NOT NULL, lease_owner TEXT, lease_until REAL)",
        "CREATE INDEX outbox_by_item ON outbox (item_id)",
    ),
    _sql(
        "CREATE TABLE conversations (item_id INTEGER NOT NULL, agent TEXT NOT NULL, "
        "messages TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (item_id, agent)) "
        "WITHOUT ROWID",
        "CREATE TABLE response_cache (cache_key TEXT PRIMARY KEY, response TEXT NOT NULL, "
        "created_at REAL NOT NULL) WITHOUT ROWID",
    ),
    _then(
        _sql("ALTER TABLE workflows ADD COLUMN content_hash TEXT NOT NULL DEFAULT ''"),
        fill_content_hashes_txn,
    ),
    _sql(
        "CREATE TABLE tasks (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, "
        "state TEXT NOT NULL, visit INTEGER NOT NULL, queue TEXT NOT NULL, role TEXT NOT NULL, "
        "status TEXT NOT NULL, created_at REAL NOT NULL, due_at REAL, remind_at REAL, "
        "reminded_at REAL, claimed_by TEXT, claim_until REAL, decided_by TEXT, "
        "decided_at REAL, outcome TEXT, comment TEXT, data TEXT, "
        "UNIQUE (item_id, state, visit))",
        "CREATE INDEX tasks_inbox ON tasks (status, queue, created_at)",
        "CREATE TABLE tokens (id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, "
        "secret_hash TEXT NOT NULL UNIQUE, queues TEXT NOT NULL, created_at REAL NOT NULL, "
        "last_used_at REAL, revoked_at REAL)",
        "CREATE TABLE sessions (session_hash TEXT PRIMARY KEY, token_id INTEGER NOT NULL, "
        "csrf TEXT NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID",
        "CREATE INDEX history_by_at ON history (at)",
        "CREATE INDEX items_overview ON items (workflow, version, state, status, entered_at)",
    ),
    unique_active_names_txn,
    # Outbox ids come from a counter, like PostgreSQL's sequence: the largest id + 1 handed out
    # a deleted row's id again while a runner still had that row's command in flight.
    _sql(
        "CREATE TABLE outbox_ids (last INTEGER NOT NULL)",
        "INSERT INTO outbox_ids (last) SELECT COALESCE(MAX(id), 0) FROM outbox",
    ),
    _sql(*_OUTPUTS_SQLITE),
    _sql(*_PAYLOADS_IN_PAGES_SQLITE),
    _sql(*_SPENT),
    _sql(*_BUFFER),
    _tally("INTEGER", "REAL", " WITHOUT ROWID"),
)

# Runnable rows (unleased, or leased past their time) are found through partial indexes, so a
# claim's FOR UPDATE SKIP LOCKED scan touches only rows it may take.
POSTGRES_MIGRATIONS: tuple[Migration, ...] = (
    _sql(
        "CREATE TABLE workflows (name TEXT NOT NULL, version BIGINT NOT NULL, "
        "source TEXT NOT NULL, file TEXT NOT NULL, commands TEXT NOT NULL, "
        "created_at DOUBLE PRECISION NOT NULL, content_hash TEXT NOT NULL, "
        "PRIMARY KEY (name, version))",
        "CREATE TABLE items (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "workflow TEXT NOT NULL, version BIGINT NOT NULL, key TEXT NOT NULL, "
        "state TEXT NOT NULL, status TEXT NOT NULL, entered_at DOUBLE PRECISION NOT NULL, "
        "created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
        "seq BIGINT NOT NULL, attempt BIGINT NOT NULL, retrying BOOLEAN NOT NULL, "
        "visits TEXT NOT NULL, branches TEXT, UNIQUE (workflow, key))",
        "CREATE INDEX items_by_state ON items (workflow, state, entered_at)",
        "CREATE INDEX items_by_status ON items (status, entered_at)",
        "CREATE INDEX items_by_key ON items (key)",
        'CREATE TABLE context (item_id BIGINT NOT NULL, path TEXT COLLATE "C" NOT NULL, '
        "value TEXT NOT NULL, PRIMARY KEY (item_id, path))",
        "CREATE TABLE history (item_id BIGINT NOT NULL, seq BIGINT NOT NULL, "
        "at DOUBLE PRECISION NOT NULL, from_state TEXT, to_state TEXT NOT NULL, "
        "event TEXT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (item_id, seq))",
        "CREATE TABLE timers (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "item_id BIGINT NOT NULL, due_at DOUBLE PRECISION NOT NULL, event TEXT NOT NULL, "
        "lease_owner TEXT, lease_until DOUBLE PRECISION)",
        "CREATE INDEX timers_by_due ON timers (due_at)",
        "CREATE INDEX timers_by_item ON timers (item_id)",
        "CREATE INDEX timers_runnable ON timers (due_at, id) WHERE lease_owner IS NULL",
        "CREATE INDEX timers_leased ON timers (lease_until) WHERE lease_owner IS NOT NULL",
        "CREATE SEQUENCE outbox_ids",
        "CREATE TABLE outbox (id BIGINT PRIMARY KEY DEFAULT nextval('outbox_ids'), "
        "item_id BIGINT NOT NULL, effect TEXT NOT NULL, "
        "available_at DOUBLE PRECISION NOT NULL, lease_owner TEXT, "
        "lease_until DOUBLE PRECISION)",
        "ALTER SEQUENCE outbox_ids OWNED BY outbox.id",
        "CREATE INDEX outbox_by_item ON outbox (item_id)",
        "CREATE INDEX outbox_runnable ON outbox (available_at, id) WHERE lease_owner IS NULL",
        "CREATE INDEX outbox_leased ON outbox (lease_until) WHERE lease_owner IS NOT NULL",
        "CREATE TABLE conversations (item_id BIGINT NOT NULL, agent TEXT NOT NULL, "
        "messages TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
        "PRIMARY KEY (item_id, agent))",
        "CREATE TABLE response_cache (cache_key TEXT PRIMARY KEY, response TEXT NOT NULL, "
        "created_at DOUBLE PRECISION NOT NULL)",
    ),
    _sql(
        "CREATE TABLE tasks (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "item_id BIGINT NOT NULL, state TEXT NOT NULL, visit BIGINT NOT NULL, "
        "queue TEXT NOT NULL, role TEXT NOT NULL, status TEXT NOT NULL, "
        "created_at DOUBLE PRECISION NOT NULL, due_at DOUBLE PRECISION, "
        "remind_at DOUBLE PRECISION, reminded_at DOUBLE PRECISION, claimed_by TEXT, "
        "claim_until DOUBLE PRECISION, decided_by TEXT, decided_at DOUBLE PRECISION, "
        "outcome TEXT, comment TEXT, data TEXT, UNIQUE (item_id, state, visit))",
        "CREATE INDEX tasks_inbox ON tasks (status, queue, created_at)",
        "CREATE TABLE tokens (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "name TEXT NOT NULL, role TEXT NOT NULL, secret_hash TEXT NOT NULL UNIQUE, "
        "queues TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
        "last_used_at DOUBLE PRECISION, revoked_at DOUBLE PRECISION)",
        "CREATE TABLE sessions (session_hash TEXT PRIMARY KEY, token_id BIGINT NOT NULL, "
        "csrf TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX history_by_at ON history (at)",
        "CREATE INDEX items_overview ON items (workflow, version, state, status, entered_at)",
    ),
    unique_active_names_txn,
    _sql(*_OUTPUTS_POSTGRES),
    _sql(*_SPENT),
    _sql(*_BUFFER),
    _tally("BIGINT", "DOUBLE PRECISION"),
)


def migrate_txn(db: Connection, migrations: Sequence[Migration], current: int) -> int:
    """Apply the migrations after ``current``; the schema version now reached."""
    if current > len(migrations):
        raise StoreError(
            f"the database is at schema version {current}, newer than this statewise knows "
            f"({len(migrations)}); upgrade statewise"
        )
    for migration in migrations[current:]:
        migration(db)
    return len(migrations)
