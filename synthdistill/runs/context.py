"""What a stage is handed: the run's shared state (RunContext) and a narrow view of it (StageContext).

`RunContext.create` is the one way a run's context is built: by the pipeline, its dry run, and the
standalone `synthdistill evaluate`. A stage sees only what its `StageContext` offers: its config, folder
and details, the templates, engines for the teacher or a local model, the artifacts and metrics of the
stages before it, the test split, and a provenance for what it makes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthdistill.config import Pipeline, StageSpec, TeacherConfig
from synthdistill.devices import resolve_device
from synthdistill.errors import ConfigError
from synthdistill.home import home
from synthdistill.records import Provenance, Record
from synthdistill.runs.folder import FailedRequests, RunFolder
from synthdistill.teachers.base import Request
from synthdistill.teachers.cache import CallCache
from synthdistill.teachers.costs import Budget
from synthdistill.teachers.counters import Planned, TeacherCounters
from synthdistill.teachers.engine import Engine, build_engine
from synthdistill.templates import Templates


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
    limit: int | None = None
    """The run's --limit: each split cut to its first N items."""
    train_records: list[Record] = field(default_factory=list)
    """The data's train split as loaded, before any stage (the STaR rounds sample every item again)."""
    _engines: dict[str, Engine] = field(default_factory=dict)
    _retired: TeacherCounters = field(default_factory=TeacherCounters)
    """The counters of engines released mid-run (local models), so that totals still hold their calls."""
    _cache: CallCache | None = None

    @classmethod
    def create(
        cls,
        pipeline: Pipeline,
        folder: RunFolder,
        test_records: list[Record],
        *,
        templates: Templates | None = None,
        artifacts: dict[str, Any] | None = None,
        dry_run: bool = False,
        limit: int | None = None,
        train_records: list[Record] | None = None,
    ) -> RunContext:
        """The context of a run of `pipeline` in `folder`: its device, templates, budget and failure log."""
        config = pipeline.config
        return cls(
            pipeline=pipeline,
            run=folder,
            templates=templates or Templates.for_pipeline(pipeline.base_dir),
            test_records=test_records,
            device=resolve_device(config.device),
            artifacts=dict(artifacts or {}),
            budget=Budget(config.max_cost_usd),
            failed=None if dry_run else FailedRequests(folder.failed_requests_path),
            dry_run=dry_run,
            limit=limit,
            train_records=list(train_records or []),
        )

    @property
    def seed(self) -> int:
        """The pipeline's one seed."""
        return self.pipeline.config.seed

    def cache(self) -> CallCache:
        """The call cache under SYNTHDISTILL_HOME, shared by every engine of the run."""
        if self._cache is None:
            self._cache = CallCache(home() / "cache" / "calls.sqlite")
        return self._cache

    def engine(self, teacher: TeacherConfig | str | None = None) -> Engine:
        """The engine for `teacher` (the pipeline's teacher by default; a name is one of its `teachers`),
        built once per run."""
        config = self.pipeline.config
        named = teacher if isinstance(teacher, str) else None
        teacher = config.teacher_named(teacher) if isinstance(teacher, str) else teacher or config.teacher
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
                    key=f"teachers.{named}.price" if named in config.teachers else "teacher.price",
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

    def engine_stats(self) -> TeacherCounters:
        """The counters of every engine of the run, summed."""
        return TeacherCounters.total([self._retired, *(engine.stats for engine in self._engines.values())])

    def take_planned(self) -> tuple[Planned, bool]:
        """What the engines planned since the last call, summed, and whether every price was known."""
        engines = list(self._engines.values())
        total = Planned.total(engine.planned for engine in engines)
        for engine in engines:
            engine.planned = Planned()
        return total, all(engine.price is not None for engine in engines)

    def release_local_models(self) -> None:
        """Close the engines of local models, freeing their memory; they reload (in ~1 s) when asked for."""
        for key, engine in list(self._engines.items()):
            if getattr(engine.backend, "local", False):
                engine.close()
                self._retired.add(engine.stats)
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
    """What one stage sees of the run: its own config and folder, and the run's shared parts it uses."""

    run: RunContext
    spec: StageSpec
    folder: Path
    details: dict[str, Any] = field(default_factory=dict)
    """What the stage reports of itself; it lands in the manifest."""
    upstream: str = ""
    """The fingerprint of everything before this stage (data, seed, earlier stages); a stage that runs
    steps of its own (adversarial) chains their fingerprints from it."""
    written: Path | None = None
    """The file of the records this stage has written so far (a resumed stage's earlier output)."""
    teacher: TeacherConfig | None = None
    """Who answers in place of the pipeline's teacher (the STaR rounds' newest student); None is the
    pipeline's teacher."""
    # The run's shared parts a stage uses (the artifacts and metrics dicts are the run's own: a stage adds
    # to them for the stages after it).
    pipeline: Pipeline = field(init=False)
    templates: Templates = field(init=False)
    seed: int = field(init=False)
    device: str = field(init=False)
    test_records: list[Record] = field(init=False)
    train_records: list[Record] = field(init=False)
    artifacts: dict[str, Any] = field(init=False)
    metrics: dict[str, dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        run = self.run
        self.pipeline, self.templates, self.seed, self.device = (
            run.pipeline,
            run.templates,
            run.seed,
            run.device,
        )
        self.test_records, self.artifacts, self.metrics = run.test_records, run.artifacts, run.metrics
        self.train_records = run.train_records

    @property
    def config(self) -> Any:
        """The stage's validated config."""
        return self.spec.config

    @property
    def log(self) -> logging.Logger:
        """The stage's logger."""
        return logging.getLogger(f"synthdistill.stages.{self.spec.name}")

    def engine(self, teacher: TeacherConfig | str | None = None) -> Engine:
        """The engine for `teacher` (the stage's teacher by default: the pipeline's, or who stands in; a
        name is one of the pipeline's `teachers`)."""
        return self.run.engine(teacher or self.teacher)

    def local_model(self, model: str | Path, batch_size: int = 32) -> TeacherConfig:
        """A local model (the student, its base, a trained checkpoint) as a teacher, for `engine`."""
        return TeacherConfig(backend="transformers", model=str(model), batch_size=batch_size)

    def release_local_models(self) -> None:
        """Free the memory of local models; they reload when asked for."""
        self.run.release_local_models()

    def provenance(
        self,
        template: str,
        params: dict[str, Any],
        *,
        teacher: TeacherConfig | str | None = None,
        stage: str = "",
    ) -> Provenance:
        """Where fields this stage makes with `template` come from (the pipeline's teacher by default; a
        name is one of its `teachers`, and goes into the params as `teacher_name`)."""
        if isinstance(teacher, str):
            params = {**params, "teacher_name": teacher}
            teacher = self.pipeline.config.teacher_named(teacher)
        teacher = teacher or self.teacher or self.pipeline.config.teacher
        return Provenance(
            stage=stage or self.spec.name,
            teacher=teacher.backend,
            model=teacher.model,
            template=template,
            template_hash=self.templates.hash(template),
            params=params,
        )
