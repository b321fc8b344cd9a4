"""What only the SQLite dialect does: one runner per file, proved by a lock file."""

from __future__ import annotations

from pathlib import Path

import pytest

from statewise.errors import StoreError
from statewise.store import open_store
from statewise.store.sqlite import SQLiteStore

from .helpers import T0, commit, run, started

HELD = [("orders", 1)]


def test_running_takes_the_file_lock_and_frees_leases_a_dead_runner_left(tmp_path: Path) -> None:
    first, second = SQLiteStore(tmp_path / "s.sqlite"), SQLiteStore(tmp_path / "s.sqlite")
    run(commit(first, started("a")))

    async def scenario() -> None:
        assert len(await first.claim_commands("dead", 10, T0, 600.0, HELD)) == 1
        assert await second.claim_commands("late", 10, T0 + 1, 60.0, HELD) == []  # leased
        async with first.running("runner-1"):
            (claim,) = await first.claim_commands("runner-1", 10, T0 + 1, 60.0, HELD)
            assert claim.key == "a"
            with pytest.raises(StoreError, match=r"already being run by pid \d+ \(runner-1\)"):
                async with second.running("runner-2"):
                    pass  # pragma: no cover
        async with second.running("runner-2"):
            assert len(await second.claim_commands("runner-2", 10, T0 + 2, 60.0, HELD)) == 1

    try:
        run(scenario())
    finally:
        run(first.close())
        run(second.close())


def test_open_store_reads_sqlite_urls_and_paths_and_refuses_other_schemes(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path}/a.sqlite", tmp_path / "b.sqlite", str(tmp_path / "c.db")):
        opened = open_store(url)
        assert isinstance(opened, SQLiteStore)
        run(opened.close())
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == ["a.sqlite", "b.sqlite"]
    with pytest.raises(StoreError, match="unsupported store URL scheme 'mysql'"):
        open_store("mysql://localhost/db")
