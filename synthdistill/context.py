"""What a stage is handed: the run's config, its folder, templates, engines, artifacts and test split."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from synthdistill.cache import CallCache
from synthdistill.config import Pipeline, StageSpec, TeacherConfig
from synthdistill.costs import Budget, price_for
from synthdistill.engine import Engine, EngineStats, Planned
from synthdistill.errors import ConfigError
from synthdistill.home import home
from synthdistill.limits import RateLimiter
from synthdistill.records import Record
from synthdistill.registry import registry
from synthdistill.runfolder import FailedRequests, RunFolder
from synthdistill.teachers.base import Request
from synthdistill.templates import Templates

T = TypeVar("T")


@dataclass
class RunContext:
    """One run's shared state, passed explicitly to every stage (no globals)."""

    pipeline: Pipeline
    run: RunFolder
    templates: Templates
    test_records: list[Record]
    device: str
    artifacts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget: Budget = field(default_factory=lambda: Budget(None))
    failed: FailedRequests | None = None
    """Where requests that failed after every retry are written (outputs/<run>/failed_requests.jsonl)."""
    dry_run: bool = False
    """Whether engines only count what they would send (`synthdistill run --dry-run`)."""
    _engines: dict[str, Engine] = field(default_factory=dict)
    _retired: EngineStats = field(default_factory=EngineStats)
    """The counters of engines released mid-run (local models), so that totals still hold their calls."""
    _cache: CallCache | None = None

    @property
    def seed(self) -> int:
        """The pipeline's one seed."""
        return self.pipeline.config.seed

    def cache(self) -> CallCache:
        """The call cache under SYNTHDISTILL_HOME, shared by every engine of the run."""
        if self._cache is None:
            self._cache = CallCache(home() / "cache" / "calls.sqlite")
        return self._cache

    def engine(self, teacher: TeacherConfig | None = None) -> Engine:
        """The engine for `teacher` (the pipeline's teacher by default), built once per run."""
        teacher = teacher or self.pipeline.config.teacher
        key = teacher.model_dump_json()
        if key not in self._engines:
            engine = build_engine(teacher, self.cache(), self.device, self.budget)
            if engine.price is None and self.budget.max_usd is not None:
                engine.close()
                raise ConfigError(
                    f"max_cost_usd is set but no price is known for model {teacher.model!r}; set "
                    "teacher.price: {input_per_mtok: ..., output_per_mtok: ...} or install litellm for "
                    "its price map",
                    file=str(self.pipeline.path),
                    key="teacher.price",
                )
            engine.on_failure = self._failed_request
            engine.dry_run = self.dry_run
            if hasattr(engine.backend, "use_run_folder") and not self.dry_run:
                engine.backend.use_run_folder(self.run.root)
            self._engines[key] = engine
        return self._engines[key]

    def _failed_request(self, payload: Any, request: Request, reason: str) -> None:
        if self.failed is not None:
            # Payloads are records (or tuples starting with one); the id lets a reader find the input.
            record = payload[0] if isinstance(payload, tuple) and payload else payload
            self.failed.add(getattr(record, "id", None), request.model_dump(exclude_defaults=True), reason)

    def engine_stats(self) -> EngineStats:
        """The counters of every engine of the run, summed."""
        return _summed(EngineStats(), [self._retired, *(engine.stats for engine in self._engines.values())])

    def take_planned(self) -> tuple[Planned, bool]:
        """What the engines planned since the last call, summed, and whether every price was known."""
        engines = list(self._engines.values())
        total = _summed(Planned(), [engine.planned for engine in engines])
        for engine in engines:
            engine.planned = Planned()
        return total, all(engine.price is not None for engine in engines)

    def release_local_models(self) -> None:
        """Close the engines of local models, freeing their memory; they reload (in ~1 s) when asked for."""
        for key, engine in list(self._engines.items()):
            if getattr(engine.backend, "local", False):
                engine.close()
                _summed(self._retired, [engine.stats])
                del self._engines[key]

    def close(self) -> None:
        """Close every engine and the cache."""
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
        if self._cache is not None:
            self._cache.close()
            self._cache = None


@dataclass
class StageContext:
    """The run context plus what belongs to the stage being run."""

    run: RunContext
    spec: StageSpec
    folder: Path
    details: dict[str, Any] = field(default_factory=dict)
    """What the stage reports of itself; it lands in the manifest."""
    upstream: str = ""
    """The fingerprint of everything before this stage (data, seed, earlier stages); a stage that runs
    sub-runs of its own (adversarial) chains their fingerprints from it."""

    @property
    def config(self) -> Any:
        """The stage's validated config."""
        return self.spec.config

    @property
    def log(self) -> logging.Logger:
        """The stage's logger."""
        return logging.getLogger(f"synthdistill.stages.{self.spec.name}")

    def __getattr__(self, name: str) -> Any:
        # Everything else (templates, engine, artifacts, seed, ...) comes from the run.
        return getattr(self.run, name)


def _summed(total: T, parts: list[T]) -> T:
    """`total` (an empty counters dataclass) with every part's fields added in."""
    for part in parts:
        for name, value in vars(part).items():
            setattr(total, name, getattr(total, name) + value)
    return total


def build_engine(
    teacher: TeacherConfig, cache: CallCache, device: str, budget: Budget | None = None
) -> Engine:
    """An engine around the backend that `teacher.backend` names, with its limits, price and budget."""
    backend_class = registry("teacher").get(teacher.backend)
    backend = backend_class(teacher, device=device)
    local = getattr(backend, "local", False)
    # A local model, like a batch job, queues requests behind others: a wall-clock timeout would misfire.
    queued = local or getattr(backend, "queued", False)
    concurrency = teacher.max_concurrency
    if teacher.batch_api is not None:
        # Two jobs' worth in flight, so one fills while the other is answered.
        concurrency = max(concurrency, 2 * teacher.batch_api.max_requests)
    return Engine(
        backend,
        cache,
        max_concurrency=concurrency,
        max_retries=teacher.max_retries,
        timeout_s=None if queued else teacher.timeout_s,
        hedge_after=None if queued else teacher.hedge_after,
        limiter=RateLimiter(rpm=teacher.rpm, tpm=teacher.tpm),
        price=price_for(teacher, local),
        budget=budget,
    )
