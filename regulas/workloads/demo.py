"""The demo study: ridge regression of many synthetic targets, cross-validated.

It needs no input files: ``prepare`` draws X (n_samples x n_features) and
Y = X W + noise (n_samples x n_targets) from the study seed and writes both to Zarr.
A task fits :class:`sklearn.linear_model.Ridge` to one block of targets on one
KFold split, writes its test predictions and coefficients into chunks it alone owns,
and returns MSE and R^2 per target. It is the splicing workload in miniature (targets
stand for splicing events, features for RBPs) and exercises every part of the spine.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from regulas.core.config.typed import positive
from regulas.core.errors import ConfigError
from regulas.core.hashing import derive_seed
from regulas.core.report import Report, ReportContext, ReportOutput
from regulas.core.task import Region, Task, make_task
from regulas.core.workload import Block, SharedContext, SharedInput, StudyContext, TaskContext, TaskResult, Workload
from regulas.reports.figures import clip_note, mark_outside, pyplot, robust_limits, save

# scikit-learn, pandas and the store where tasks run and reports are written: validating a
# config needs none of them
if TYPE_CHECKING:
    import pandas as pd

    from regulas.core.workload import WorkloadTables


@dataclass(frozen=True)
class DemoConfig:
    n_samples: int = 120
    n_features: int = 40
    n_targets: int = 1000
    block_size: int = 50  # targets per task; also the Zarr chunk width along targets
    n_splits: int = 5
    alpha: float = 1.0
    noise: float = 1.0  # standard deviation of the noise added to X W
    # Knobs for testing the machinery (all off by default):
    sleep_s: float = 0.0  # extra seconds per task
    fail_blocks: list[int] = field(default_factory=list)  # blocks whose tasks raise
    crash_blocks: list[int] = field(default_factory=list)  # blocks whose tasks kill their worker process
    hang_blocks: list[int] = field(default_factory=list)  # blocks whose tasks hang (sleep for an hour)
    trace_dir: str | None = None  # one empty file per task execution (key.job.unique), to count them
    share_splits: bool = False  # each split's folds computed once per run, a shared input of its tasks
    fail_shared_splits: list[int] = field(default_factory=list)  # splits whose shared input raises

    def check(self, prefix: str, source: str | None) -> None:
        for key in ("n_samples", "n_features", "n_targets", "block_size", "alpha"):
            positive(getattr(self, key), f"{prefix}.{key}", source)
        positive(self.sleep_s, f"{prefix}.sleep_s", source, allow_zero=True)
        positive(self.noise, f"{prefix}.noise", source, allow_zero=True)
        if not 2 <= self.n_splits <= self.n_samples:
            raise ConfigError(
                f"out of range (given: {self.n_splits}); expected 2 <= n_splits <= n_samples ({self.n_samples})",
                key=f"{prefix}.n_splits",
                source=source,
            )


@dataclass(frozen=True)
class DemoBlock(Block):
    """One task: targets ``[start, stop)`` of block ``block`` on outer split ``split``."""

    block: int
    targets: tuple[int, int]
    split: int
    split_seed: int

    @classmethod
    def of(cls, task: Task) -> DemoBlock:
        b = task.block
        start, stop = b["targets"]
        return cls(b["block"], (start, stop), b["split"], b["split_seed"])


#: the lowest R² the figure's axis shows; lower values are counted at its edge
R2_FLOOR = -1.0


def _target_names(start: int, stop: int) -> list[str]:
    return [f"target{j:05d}" for j in range(start, stop)]


class DemoWorkload(Workload):
    name = "demo"
    section = "demo"
    config_class = DemoConfig
    config: DemoConfig
    runtime_keys = ("sleep_s", "trace_dir", "share_splits")

    @classmethod
    def store_tables(cls) -> WorkloadTables:
        from regulas.workloads.score import SCORE_TABLES

        return SCORE_TABLES

    def prepare(self, ctx: StudyContext) -> str:
        from regulas.store.arrays import ArraySpec

        c = self.config
        rng = np.random.default_rng(derive_seed(ctx.root_seed, "demo.data", {}))
        X = rng.standard_normal((c.n_samples, c.n_features))
        # sparse true weights: each target depends on a few features ("regulators")
        W = rng.standard_normal((c.n_features, c.n_targets)) * (rng.random((c.n_features, c.n_targets)) < 0.1)
        Y = X @ W + c.noise * rng.standard_normal((c.n_samples, c.n_targets))
        a = ctx.arrays
        a.create(ArraySpec("X", X.shape, X.shape, dims=("sample", "feature"), description="features"), X)
        a.create(ArraySpec("W", W.shape, (c.n_features, c.block_size), dims=("feature", "target"), description="true weights"), W)
        a.create(ArraySpec("Y", Y.shape, (c.n_samples, c.block_size), dims=("sample", "target"), description="targets"), Y)
        a.create(
            ArraySpec(
                "pred",
                (c.n_splits, c.n_samples, c.n_targets),
                (1, c.n_samples, c.block_size),
                dims=("split", "sample", "target"),
                description="test-set predictions per split (NaN for training samples)",
            )
        )
        a.create(
            ArraySpec(
                "coef",
                (c.n_splits, c.n_features, c.n_targets),
                (1, c.n_features, c.block_size),
                dims=("split", "feature", "target"),
                description="ridge coefficients per split",
            )
        )
        return hashlib.sha256(X.tobytes() + Y.tobytes()).hexdigest()

    def plan(self, ctx: StudyContext, fingerprint: str) -> list[Task]:
        c = self.config
        split_seed = derive_seed(ctx.root_seed, "demo.splits", {})
        config = self.result_config()
        tasks = []
        for b, start in enumerate(range(0, c.n_targets, c.block_size)):
            stop = min(start + c.block_size, c.n_targets)
            for s in range(c.n_splits):
                block = DemoBlock(b, (start, stop), s, split_seed % 2**32)
                regions = (
                    Region.of("pred", s, slice(0, c.n_samples), slice(start, stop)),
                    Region.of("coef", s, slice(0, c.n_features), slice(start, stop)),
                )
                tasks.append(
                    make_task(
                        study=ctx.name,
                        kind="demo.ridge",
                        block=block.json(),
                        root_seed=ctx.root_seed,
                        config=config,
                        data_fingerprint=fingerprint,
                        regions=regions,
                    )
                )
        return tasks

    def shared_inputs(self, task: Task) -> list[SharedInput]:
        c = self.config
        block = DemoBlock.of(task)
        if not (c.share_splits or block.split in c.fail_shared_splits):
            return []
        return [SharedInput(f"demo.split-{block.split_seed}-{block.split}", {"split": block.split, "split_seed": block.split_seed})]

    def compute_shared(self, ctx: SharedContext) -> tuple[np.ndarray, np.ndarray]:
        split, seed = ctx.shared.block["split"], ctx.shared.block["split_seed"]
        if split in self.config.fail_shared_splits:
            raise RuntimeError(f"demo.fail_shared_splits asks the shared input of split {split} to fail")
        return self._folds(split, seed)

    def _folds(self, split: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.model_selection import KFold

        c = self.config
        folds = KFold(n_splits=c.n_splits, shuffle=True, random_state=seed)
        train, test = list(folds.split(np.zeros((c.n_samples, 1))))[split]
        return train, test

    def run_task(self, ctx: TaskContext) -> TaskResult:
        from sklearn.linear_model import Ridge

        from regulas.workloads.score import ScoreRows

        c = self.config
        block = DemoBlock.of(ctx.task)
        if c.trace_dir:
            # key.<SLURM job or "local">.<unique>: which job started which execution
            job = os.environ.get("SLURM_JOB_ID", "local")
            Path(c.trace_dir, f"{ctx.task.key}.{job}.{uuid.uuid4().hex}").touch()
        if block.block in c.crash_blocks:
            os._exit(70)  # what a segfault or the OOM killer does to a worker
        if block.block in c.hang_blocks:
            time.sleep(3600)  # what a deadlock or a stuck file system does to a task
        if block.block in c.fail_blocks:
            raise RuntimeError(f"demo.fail_blocks asks block {block.block} to fail")
        if c.sleep_s:
            time.sleep(c.sleep_s)
        start, stop = block.targets
        split = block.split
        X = ctx.arrays.read("X")
        Y = ctx.arrays.read("Y", (slice(None), slice(start, stop)))
        shared = next(iter(ctx.shared.values()), None)
        train, test = shared if shared is not None else self._folds(split, block.split_seed)
        model = Ridge(alpha=c.alpha).fit(X[train], Y[train])
        pred = model.predict(X[test])
        full = np.full((1, c.n_samples, stop - start), np.nan)
        full[0, test] = pred
        ctx.arrays.write(Region.of("pred", split, slice(0, c.n_samples), slice(start, stop)), full)
        ctx.arrays.write(Region.of("coef", split, slice(0, c.n_features), slice(start, stop)), model.coef_.T[None])
        resid = pred - Y[test]
        mse = np.mean(resid**2, axis=0)
        sst = np.sum((Y[test] - Y[test].mean(axis=0)) ** 2, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(sst > 0, 1.0 - np.sum(resid**2, axis=0) / sst, np.nan)
        n = stop - start
        names = _target_names(start, stop)
        return TaskResult.of(
            ScoreRows(
                target=names * 2,
                method=["ridge"] * (2 * n),
                split=[split] * (2 * n),
                metric=["mse"] * n + ["r2"] * n,
                value=np.concatenate([mse, r2]),
            )
        )

    def reports(self) -> list[Report]:
        return [DemoSummary(), DemoFigure()]


class DemoSummary(Report):
    """Median, mean, range and NaN count of each metric over targets and splits (printed after a run)."""

    name = "summary"

    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        import pandas as pd
        from sqlalchemy import text

        from regulas.store.reading import read_frame

        scores = read_frame(
            ctx.db,
            text("SELECT metric, value, value_is_nan AS nan_flag FROM score WHERE study_id = :s ORDER BY metric"),
            {"s": ctx.study_id},
        )
        g = scores.groupby("metric")
        frame = pd.DataFrame({
            "median": g["value"].median(), "mean": g["value"].mean(), "min": g["value"].min(),
            "max": g["value"].max(), "n": g.size(), "nan": g["nan_flag"].sum().astype(int),
        }).rename_axis("metric").reset_index()
        lines = ["metric  median    mean      min       max       n      NaN"]
        lines += [f"{r.metric:<7} {r.median:<9.4f} {r.mean:<9.4f} {r.min:<9.4f} {r.max:<9.4f} {r.n:<6d} {r.nan}"
                  for r in frame.itertuples(index=False)]
        lines.append("over (target, split) test folds; the median is robust to a few extreme folds. "
                     "r2 is NaN where a fold's test targets are constant.")
        return ReportOutput(frame=frame, text="\n".join(lines), title="scores per metric over targets and splits")


class DemoFigure(Report):
    """Test R² per split (robust axis, outside points counted), and true against out-of-fold predictions."""

    name = "performance_figure"

    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        from sqlalchemy import text

        from regulas.store.reading import read_frame

        plt = pyplot()
        r2 = read_frame(
            ctx.db,
            text("SELECT target, split, value, value_is_nan FROM score WHERE study_id = :s AND metric = 'r2'"),
            {"s": ctx.study_id},
        ).dropna(subset=["value"])
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
        splits = sorted(r2.split.unique())
        groups = [r2.value[r2.split == s].to_numpy() for s in splits]
        left.boxplot(groups, tick_labels=[str(s) for s in splits], flierprops={"markersize": 3, "alpha": 0.5})
        clip = robust_limits(np.concatenate(groups) if groups else [], bounds=(R2_FLOOR, 1.0), include=(0.0,))
        mark_outside(left, range(1, len(splits) + 1), groups, clip)
        note = clip_note(clip, "values")
        left.set(xlabel="CV split" + (f"\n{note}" if note else ""), ylabel="test $R^2$ per target",
                 title=f"{len(r2.target.unique())} targets (box: median, quartiles; whiskers 1.5 IQR)")
        left.axhline(0, color="grey", lw=0.8, ls="--")
        best = r2.groupby("target").value.mean().nlargest(4).index
        Y = np.asarray(ctx.arrays.open("Y")[:])
        P = np.asarray(ctx.arrays.open("pred")[:])
        for name in best:
            j = int(name.removeprefix("target"))
            p = np.nansum(P[:, :, j], axis=0)  # each sample is predicted in exactly one split
            right.scatter(Y[:, j], p, s=10, label=name)
        lo, hi = right.get_xlim()
        right.plot([lo, hi], [lo, hi], color="grey", lw=0.8, label="predicted = true")
        right.set(xlabel="true", ylabel="predicted (out of fold)", title="best targets by mean $R^2$")
        right.legend(fontsize=8)
        return ReportOutput(files=[save(fig, ctx.out_dir / "demo_performance.png")], title="test R² per split; predicted vs true")
