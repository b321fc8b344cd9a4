"""What every request handler works with: the store, the definitions held, the writers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from statewise.actions import TaskDesk
from statewise.definition.model import Definition
from statewise.errors import NotFoundError
from statewise.inputs import InputLimits
from statewise.observe.alerting import AlertSettings, Deliverer
from statewise.observe.health import ReadinessPolicy
from statewise.observe.metrics import Metrics
from statewise.observe.tracing import StepTracer
from statewise.store.base import Store
from statewise.worker.catalog import Catalog
from statewise.worker.observers import CommitObserver, CommitObservers
from statewise.worker.refresh import REFRESH_EVERY, CatalogRefresh, Load
from statewise.worker.runner import Runner
from statewise.worker.supervisor import RestartPolicy, Supervisor


@dataclass
class ServiceContext:
    """One service process: its store and catalog, and the runner that writes (and works).

    ``workers`` says whether the runner also performs work in this process (``statewise
    serve``) or only writes, beside separate ``statewise worker`` processes (``--no-workers``);
    with workers, ``supervisor`` keeps the runner running (``restarts``) and ``/readyz``
    reports it, with the thresholds of ``readiness``, and ``prune_every`` (seconds, None:
    never) applies the retention policies beside it. With ``alerts``, alert rounds run beside
    it too (``observe.alerting``), with or without workers. ``input_limits`` bound request bodies
    and the keys and documents in them. With ``reload``, the catalog is loaded again that way
    whenever the stored versions change (checked every ``refresh_every`` seconds, and when a
    request names a version not held), and everything here answers with the new one.
    """

    store: Store
    catalog: Catalog
    workers: bool = True
    lease_seconds: float = 60.0
    clock: Callable[[], float] = time.time
    tracer_provider: Any = None
    input_limits: InputLimits = field(default_factory=InputLimits.from_environment)
    restarts: RestartPolicy = field(default_factory=RestartPolicy)
    readiness: ReadinessPolicy = field(default_factory=ReadinessPolicy)
    prune_every: float | None = None
    reload: Load | None = None
    refresh_every: float | None = REFRESH_EVERY
    alerts: AlertSettings | None = None
    runner: Runner = field(init=False)
    supervisor: Supervisor | None = field(init=False)
    desk: TaskDesk = field(init=False)
    metrics: Metrics = field(init=False)
    refresh: CatalogRefresh | None = field(init=False)
    deliverer: Deliverer | None = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.store, lambda: self.catalog.definitions)
        self.deliverer = None
        if self.alerts is not None:
            self.deliverer = Deliverer(
                self.store, self.alerts, observe=self.metrics.delivered, clock=self.clock
            )
        self.runner = Runner(
            self.store,
            self.catalog.definitions,
            self.catalog.registry,
            lease_seconds=self.lease_seconds,
            clock=self.clock,
            observer=self._observer(),
            input_limits=self.input_limits,
        )
        self.desk = TaskDesk(self.runner, self.catalog.registry, self.clock, self.catalog.skipped)
        self.supervisor = Supervisor(self.runner, self.restarts) if self.workers else None
        self.refresh = None
        if self.reload is not None:
            self.refresh = CatalogRefresh(self.store, self.catalog, self.reload, self._adopt)

    def _adopt(self, catalog: Catalog) -> None:
        """Answer and work with ``catalog`` from now on (the routes read ``catalog`` each time)."""
        self.catalog = catalog
        self.runner.hold(catalog.definitions, catalog.registry)
        self.desk = TaskDesk(self.runner, catalog.registry, self.clock, catalog.skipped)

    async def take_up(self, name: str, version: int | None = None) -> None:
        """Refresh when ``name`` (at ``version``) is not held: it may have been deployed just now.

        A request calls it before looking a version up, so it finds one deployed a moment ago
        without waiting for the next periodic refresh.
        """
        if not self._held(name, version):
            await self.refresh_catalog()

    async def refresh_catalog(self) -> None:
        """Take up the versions stored since the catalog was loaded, if there are any.

        A load that fails is logged, and the request goes on with the catalog held.
        """
        if self.refresh is not None:
            await self.refresh.try_refresh()

    def _observer(self) -> CommitObserver:
        """Metrics always; a span per step too when tracing is configured."""
        if self.tracer_provider is None:
            return self.metrics.instruments
        return CommitObservers(self.metrics.instruments, StepTracer(self.tracer_provider))

    def definition(self, name: str, version: int | None = None) -> Definition:
        """A held definition by name (its newest version unless one is named)."""
        found = self._held(name, version)
        if not found:
            held = ", ".join(sorted({d.name for d in self.catalog.definitions})) or "none"
            which = f"{name}@{version}" if version is not None else name
            raise NotFoundError(f"no workflow {which!r} is held here (held: {held})")
        return max(found, key=lambda d: d.version)

    def _held(self, name: str, version: int | None) -> list[Definition]:
        found = [d for d in self.catalog.definitions if d.name == name]
        return found if version is None else [d for d in found if d.version == version]
