"""The regNet study: simulate Y = M beta + E over a grid, fit ridge and the LMM, score recovery.

Grid: replicates x genes G x conditions P x motifs T x V x Sigma x noise fraction x signal
fraction (the noise fraction only multiplies the structures that mix V into the noise,
``randomV`` / ``identityV``; the others run once, with noise_fraction stored as 0, which is
exactly what they are: no V-structured share). Models and scaling: :mod:`regulas.sim`.

Tasks (no task depends on another; the spine runs them in any order):

* ``regnet.simulate``, one per (cell, replicate): draws the data and writes Y, beta, V,
  Sigma, C0, C1 (and M, by the first cell of each (G, P, T) group) into Zarr chunks it
  alone owns; returns the achieved signal fraction and the scales as ``sim_score`` rows of
  method ``simulation``.
* ``regnet.fit``, one per (cell, replicate, method): **regenerates** the same data from the
  same seeds (the simulation is a pure function of the seeds in the task's block, and costs
  milliseconds against a fit), fits, writes beta_hat into its own chunk and returns the
  recovery metrics. This keeps every task independent (the spine has no task
  dependencies), keeps the driver free of per-cell work (a paper-size grid has tens of
  thousands of cells x replicates), and lets a resumed run skip simulations and fits
  separately; the end-to-end test checks that fits on the stored Y reproduce the stored
  results.

Zarr arrays, one set per (G, P, T) group ``<g>`` = ``G{G}_P{P}_T{T}``, indexed by the
cell's position ``i`` in its group (the ``index`` of the task block) and the replicate:
``Y.<g>`` (cells, R, G, P), ``beta.<g>`` (cells, R, T, P), ``V.<g>``, ``Sigma.<g>``,
``C0.<g>``, ``C1.<g>`` (cells, R, P, P), ``M.<g>`` (R, G, T) and ``beta_hat.<g>``
(cells, R, methods, T, P). With a motif file, ``motif_source`` holds its min-max scaled
scores (rows x motifs).

With ``block_conditions`` set (large P), the tasks and arrays are those of
:mod:`regulas.workloads.regnet.blocked` instead: Y written by blocks of conditions, one
streamed fit of every method per data set, structures in factor form, no P x P array.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from regulas.core.config.typed import build, positive
from regulas.core.errors import ConfigError
from regulas.core.report import Report
from regulas.core.task import Region, Task, make_task
from regulas.core.workload import Block, StudyContext, TaskContext, TaskResult, Workload
from regulas.sim.covariance import (
    SIM_NOISE_STRUCTURES,
    StructureError,
    check_custom,
    check_noise_name,
    check_signal_name,
    uses_noise_fraction,
)
from regulas.sim.factor_covariance import DENSE_LIMIT, FACTOR_NOISE_STRUCTURES, FACTOR_SIGNAL_STRUCTURES
from regulas.sim.fit_cost import FIT_MEMORY_LIMIT, blocked_simulation_memory, dense_simulation_memory
from regulas.sim.methods import MethodConfig, fit_method
from regulas.sim.motif_copula import DEFAULT_MOTIF_FACTORS, MotifCopula, copula_motif_matrix
from regulas.sim.motifs import draw_motif_matrix, load_motif_scores, synthetic_motif_matrix
from regulas.sim.simulate import SIMULATION, Cell, SimulationSeeds, simulate

# the store (Zarr, SQLAlchemy) and the reports (pandas, matplotlib) where a study is prepared,
# run or reported: validating a config needs none of them
if TYPE_CHECKING:
    from regulas.core.workload import WorkloadTables
    from regulas.workloads.regnet.tables import SimScoreRows


def _default_methods() -> list[dict[str, Any]]:
    return [
        {"name": "ridge", "kind": "ridge"},
        {"name": "lmm", "kind": "lmm", "signal": "freeform", "noise": "freeform"},
    ]


@dataclass(frozen=True)
class RegnetConfig:
    """The ``regnet`` section: the grid, the motif source and the methods (defaults: regNet's)."""

    motif_scores: str | None = field(default=None, metadata={"path": "file"})  # null = synthetic M
    replicates: int = 2
    genes: list[int] = field(default_factory=lambda: [978])
    conditions: list[int] = field(default_factory=lambda: [4])
    motifs: list[int] = field(default_factory=lambda: [623])
    V: list[str] = field(default_factory=lambda: ["id", "lowrank_2", "lowrank_half", "freeform"])
    Sigma: list[str] = field(default_factory=lambda: list(SIM_NOISE_STRUCTURES))
    noise_fraction: list[float] = field(default_factory=lambda: [0.7])
    fraction: list[float] = field(default_factory=lambda: [0.2])
    methods: list[dict[str, Any]] = field(default_factory=_default_methods)
    covariances: dict[str, Any] = field(default_factory=dict)  # name -> P x P matrix (list of rows)
    # large P: simulate Y by blocks of this many conditions (factor-form structures) and fit streamed from
    # Zarr; null = one task per data set with P x P structures (the small-P path)
    block_conditions: int | None = None
    # resample: M from the rows of motif_scores (subset / tiled) or Unif(0, 1); copula: synthetic rows from a
    # Gaussian copula with a factor correlation fitted to motif_scores (regulas.sim.motif_copula)
    motif_model: Literal["resample", "copula"] = "resample"
    motif_factors: int = DEFAULT_MOTIF_FACTORS  # latent factors of the copula
    replicates_by_conditions: dict[str, Any] = field(default_factory=dict)  # P -> replicates (overrides replicates)

    def replicates_for(self, conditions: int) -> int:
        by_p = {int(k): int(v) for k, v in self.replicates_by_conditions.items()}
        return by_p.get(conditions, self.replicates)

    def check(self, prefix: str, source: str | None) -> None:
        positive(self.replicates, f"{prefix}.replicates", source)
        self._check_scale(prefix, source)
        for key in ("genes", "conditions", "motifs", "V", "Sigma", "noise_fraction", "fraction", "methods"):
            values = getattr(self, key)
            if not values:
                raise ConfigError("empty list; expected at least one value", key=f"{prefix}.{key}", source=source)
            if key != "methods" and len(set(values)) != len(values):
                raise ConfigError(f"duplicated values (given: {values!r}); each grid value once",
                                  key=f"{prefix}.{key}", source=source)
        for key, low in (("genes", 2), ("conditions", 1), ("motifs", 1)):
            for v in getattr(self, key):
                if v < low:
                    raise ConfigError(f"out of range (given: {v}); expected integers >= {low}",
                                      key=f"{prefix}.{key}", source=source)
        for f in self.fraction:
            if not 0.0 < f <= 1.0:  # NaN fails too
                raise ConfigError(f"signal fraction outside (0, 1] (given: {f!r}); expected 0 < f <= 1",
                                  key=f"{prefix}.fraction", source=source)
        for f in self.noise_fraction:
            if not 0.0 <= f < 1.0:
                raise ConfigError(f"noise fraction outside [0, 1) (given: {f!r}); expected 0 <= f_N < 1 "
                                  "(the share of the noise trace with V's structure)",
                                  key=f"{prefix}.noise_fraction", source=source)
        custom = self.custom_covariances(prefix, source)
        self._check_structures(custom, prefix, source)
        methods = self.method_configs(prefix, source)
        lmm = [i for i, m in enumerate(methods) if m.kind == "lmm"]
        if lmm and 1.0 in self.fraction:
            # f = 1 means delta = 0: no noise, so C1 = 0 and the LMM likelihood has no density
            raise ConfigError(
                f"signal fraction 1.0 (no noise) with the LMM method {methods[lmm[0]].name!r}: the LMM needs "
                "positive definite noise (C1); expected fractions < 1 with an lmm method (ridge and ols accept 1.0)",
                key=f"{prefix}.fraction", source=source,
            )
        for i, method in enumerate(methods):
            for G, P, T in itertools.product(self.genes, self.conditions, self.motifs):
                method.check_cell(G, P, T, f"{prefix}.methods[{i}]", source)
        if self.motif_scores is not None:
            try:
                scores = load_motif_scores(self.motif_scores)
            except ConfigError as exc:
                raise ConfigError(str(exc), key=f"{prefix}.motif_scores", source=source) from exc
            n_motifs = scores.shape[1]
            too_many = [t for t in self.motifs if t > n_motifs]
            if too_many:
                raise ConfigError(
                    f"T = {too_many[0]} motifs asked, but {self.motif_scores} has {n_motifs} motif columns; "
                    "motifs are drawn without replacement, so expected T <= the number of columns",
                    key=f"{prefix}.motifs", source=source,
                )

    def _check_scale(self, prefix: str, source: str | None) -> None:
        """The large-P keys: block size, replicates per P, motif model, and which path each P can take."""
        for k, v in self.replicates_by_conditions.items():
            key = f"{prefix}.replicates_by_conditions"
            if not str(k).isdigit() or int(k) not in self.conditions:
                raise ConfigError(f"key {k!r} is not one of the grid's conditions {self.conditions}", key=key, source=source)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"replicates for P = {k} must be an integer >= 1 (given: {v!r})", key=key, source=source)
        positive(self.motif_factors, f"{prefix}.motif_factors", source)
        if self.motif_model == "copula" and self.motif_scores is None:
            raise ConfigError("motif_model: copula is calibrated on a motif score table; set motif_scores",
                              key=f"{prefix}.motif_model", source=source)
        width = self.block_conditions
        if width is None:
            too_big = [P for P in self.conditions if P > DENSE_LIMIT]
            if too_big:
                P, G, T = too_big[0], max(self.genes), max(self.motifs)
                raise ConfigError(
                    f"P = {P} conditions with the one-task simulation, which forms P x P structures and all of Y "
                    f"(~{dense_simulation_memory(G, P, T) / 2**30:.3g} GiB at G = {G}); expected P <= {DENSE_LIMIT}, "
                    "or set regnet.block_conditions (e.g. 1000) to write Y by blocks of conditions with "
                    "factor-form structures", key=f"{prefix}.conditions", source=source)
            return
        positive(width, f"{prefix}.block_conditions", source)
        if self.covariances:
            raise ConfigError("custom P x P covariances have no factor form; remove them or block_conditions",
                              key=f"{prefix}.covariances", source=source)
        for key, allowed in (("V", FACTOR_SIGNAL_STRUCTURES), ("Sigma", FACTOR_NOISE_STRUCTURES)):
            bad = [n for n in getattr(self, key) if n == "freeform"]
            if bad:
                raise ConfigError(f"{bad[0]!r} has no factor form (it is a dense P x P matrix); with block_conditions "
                                  f"expected one of {', '.join(allowed)}", key=f"{prefix}.{key}", source=source)
        for G, P, T in itertools.product(self.genes, self.conditions, self.motifs):
            need = blocked_simulation_memory(G, P, T, width)
            if need > FIT_MEMORY_LIMIT:
                raise ConfigError(f"a block of {min(width, P)} conditions at G = {G}, T = {T} needs ~{need / 2**30:.3g} GiB; "
                                  f"expected <= {FIT_MEMORY_LIMIT / 2**30:g} GiB: use smaller blocks",
                                  key=f"{prefix}.block_conditions", source=source)

    def custom_covariances(self, prefix: str = "regnet", source: str | None = None) -> dict[str, np.ndarray]:
        out = {}
        builtin = {"id", "freeform", "lowrank_half", *SIM_NOISE_STRUCTURES}
        for name, value in self.covariances.items():
            key = f"{prefix}.covariances.{name}"
            if name in builtin or name.startswith("lowrank_"):
                raise ConfigError("this name is a built-in structure; choose another", key=key, source=source)
            try:
                matrix = np.asarray(value, dtype=float)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"expected a P x P matrix as a list of rows of numbers ({exc})",
                                  key=key, source=source) from exc
            try:
                check_custom(name, matrix)
            except StructureError as exc:
                raise ConfigError(str(exc), key=key, source=source) from exc
            out[name] = matrix
        return out

    def _check_structures(self, custom: dict[str, np.ndarray], prefix: str, source: str | None) -> None:
        for key, check in (("V", check_signal_name), ("Sigma", check_noise_name)):
            for name, P in itertools.product(getattr(self, key), self.conditions):
                try:
                    check(name, P, custom)
                except StructureError as exc:
                    raise ConfigError(str(exc), key=f"{prefix}.{key}", source=source) from exc

    def method_configs(self, prefix: str = "regnet", source: str | None = None) -> list[MethodConfig]:
        methods = [build(MethodConfig, m, f"{prefix}.methods[{i}]", source=source) for i, m in enumerate(self.methods)]
        names = [m.name for m in methods]
        for i, name in enumerate(names):
            if name == SIMULATION or names.index(name) != i or not name:
                why = "is reserved for the simulation's rows" if name == SIMULATION else "is used twice" if name else "is empty"
                raise ConfigError(f"method name {name!r} {why}; expected unique names",
                                  key=f"{prefix}.methods[{i}].name", source=source)
        return methods

    def cells(self) -> list[Cell]:
        """The grid, in a fixed order (the order of the Zarr cell axis within each group)."""
        out = []
        for G, P, T, v, s, f in itertools.product(self.genes, self.conditions, self.motifs, self.V, self.Sigma,
                                                    self.fraction):
            fractions = self.noise_fraction if uses_noise_fraction(s) else [0.0]
            out += [Cell(G, P, T, v, s, float(nf), float(f)) for nf in fractions]
        return out


@dataclass(frozen=True)
class RegnetBlock(Block):
    """A task of the grid: (cell, replicate) of group ``group`` at position ``index``; with
    ``method``/``method_index`` a fit (``regnet.fit``), without them the simulation."""

    cell: dict[str, Any]
    group: str
    index: int
    replicate: int
    seeds: dict[str, Any]
    method: str | None = None
    method_index: int | None = None
    width: int | None = None  # blocked path: conditions per block
    condition_block: int | None = None  # blocked path: the block a simulate_block task draws
    block_seeds: list[list[int]] | None = None  # blocked path: (beta, noise) seeds of its block(s)

    def json(self) -> dict[str, Any]:
        out = super().json()
        # keys left unset stay out of the block (and of the task key: keys of the small-P path are unchanged)
        for key in ("method", "method_index", "width", "condition_block", "block_seeds"):
            if out[key] is None:
                del out[key]
        return out


def _groups(cells: list[Cell]) -> dict[str, list[Cell]]:
    groups: dict[str, list[Cell]] = {}
    for c in cells:
        groups.setdefault(c.shape_key, []).append(c)
    return groups


_SOURCE_CACHE: dict[tuple[str, str], np.ndarray] = {}


def _motif_source(ctx: TaskContext) -> np.ndarray:
    """The study's scaled motif scores, read once per worker process."""
    key = (ctx.arrays.store_path, ctx.arrays.study)
    if key not in _SOURCE_CACHE:
        _SOURCE_CACHE[key] = ctx.arrays.read("motif_source")
    return _SOURCE_CACHE[key]


_MOTIFS: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_COPULAS: dict[tuple[Any, ...], MotifCopula] = {}


def _motif_matrix(ctx: TaskContext, config: RegnetConfig, cell: Cell, seeds: SimulationSeeds) -> np.ndarray:
    """M (G x T) of a replicate, a pure function of its seed; the last two kept per worker process."""
    key = (ctx.arrays.store_path, ctx.arrays.study, cell.genes, cell.motifs, seeds.motifs, config.motif_model)
    if key not in _MOTIFS:
        rng = np.random.default_rng(seeds.motifs)
        G, T = cell.genes, cell.motifs
        if config.motif_model == "copula":
            ckey = (ctx.arrays.store_path, ctx.arrays.study, config.motif_factors)
            if ckey not in _COPULAS:
                _COPULAS[ckey] = MotifCopula.fit(_motif_source(ctx), config.motif_factors)
            M = copula_motif_matrix(_COPULAS[ckey], G, T, rng)
        elif config.motif_scores is None:
            M = synthetic_motif_matrix(G, T, rng)
        else:
            M = draw_motif_matrix(_motif_source(ctx), G, T, rng)
        _MOTIFS[key] = M
        while len(_MOTIFS) > 2:
            _MOTIFS.popitem(last=False)
    return _MOTIFS[key]


class RegnetWorkload(Workload):
    name = "regnet"
    section = "regnet"
    config_class = RegnetConfig
    config: RegnetConfig

    @classmethod
    def store_tables(cls) -> WorkloadTables:
        from regulas.workloads.regnet.tables import REGNET_TABLES

        return REGNET_TABLES

    def prepare(self, ctx: StudyContext) -> str:
        from regulas.store.arrays import ArraySpec
        from regulas.workloads.regnet import blocked

        c = self.config
        digest = hashlib.sha256()
        a = ctx.arrays
        if c.motif_scores is not None:
            scores = load_motif_scores(c.motif_scores)
            a.create(ArraySpec("motif_source", scores.values.shape, scores.values.shape, dims=("region", "motif"),
                               description=f"min-max scaled motif scores from {c.motif_scores}"), scores.values)
            digest.update(scores.values.tobytes())
            digest.update("\n".join(scores.rows + scores.motifs).encode())
        else:
            digest.update(b"synthetic")
        n_methods = len(c.methods)
        for g, cells in _groups(c.cells()).items():
            n = len(cells)
            G, P, T = cells[0].genes, cells[0].conditions, cells[0].motifs
            R = c.replicates_for(P)
            if c.block_conditions is not None:
                blocked.create_arrays(ctx, g, cells, R, n_methods, c.block_conditions)
                continue
            where = f"; cells of group {g} in grid order (task block 'index')"
            for name, tail, dims, what in (
                ("Y", (G, P), ("gene", "condition"), "simulated expression"),
                ("beta", (T, P), ("motif", "condition"), "true motif activities"),
                ("V", (P, P), ("condition", "condition2"), "signal structure, trace 1"),
                ("Sigma", (P, P), ("condition", "condition2"), "noise structure, trace 1"),
                ("C0", (P, P), ("condition", "condition2"), "true covariance of the rows of beta (sigma2_beta V)"),
                ("C1", (P, P), ("condition", "condition2"), "true covariance of the rows of E (delta Sigma)"),
            ):
                a.create(ArraySpec(f"{name}.{g}", (n, R, *tail), (1, 1, *tail), dims=("cell", "replicate", *dims),
                                   description=what + where))
            a.create(ArraySpec(f"M.{g}", (R, G, T), (1, G, T), dims=("replicate", "gene", "motif"),
                               description="motif scores M of each replicate (shared by the cells of the group)"))
            a.create(ArraySpec(f"beta_hat.{g}", (n, R, n_methods, T, P), (1, 1, 1, T, P),
                               dims=("cell", "replicate", "method", "motif", "condition"),
                               description="estimated beta per method (regnet.methods order)" + where))
        return digest.hexdigest()

    def plan(self, ctx: StudyContext, fingerprint: str) -> list[Task]:
        from regulas.workloads.regnet import blocked  # the large-P path (SciPy, Zarr): imported where it runs

        c = self.config
        config = self.result_config()
        sims, fits = [], []
        for g, cells in _groups(c.cells()).items():
            G, P, T = cells[0].genes, cells[0].conditions, cells[0].motifs
            if c.block_conditions is not None:
                group_sims, group_fits = blocked.plan_group(ctx, g, cells, c.replicates_for(P), c.methods, c.block_conditions,
                                                            config, fingerprint, RegnetBlock)
                sims += group_sims
                fits += group_fits
                continue
            for (i, cell), r in itertools.product(enumerate(cells), range(c.replicates_for(P))):
                seeds = SimulationSeeds.derive(ctx.root_seed, cell, r)
                base = RegnetBlock(cell=dict(cell.__dict__), group=g, index=i, replicate=r, seeds=dict(seeds.__dict__))
                owned = [Region.of(f"{name}.{g}", i, r, slice(0, a), slice(0, b))
                         for name, a, b in (("Y", G, P), ("beta", T, P), ("V", P, P), ("Sigma", P, P),
                                            ("C0", P, P), ("C1", P, P))]
                if i == 0:
                    owned.append(Region.of(f"M.{g}", r, slice(0, G), slice(0, T)))
                sims.append(make_task(study=ctx.name, kind="regnet.simulate", block=base.json(), root_seed=ctx.root_seed,
                                      config=config, data_fingerprint=fingerprint, regions=tuple(owned)))
                for m, method in enumerate(c.methods):
                    fits.append(make_task(
                        study=ctx.name, kind="regnet.fit", block=dataclasses.replace(base, method=method["name"], method_index=m).json(),
                        root_seed=ctx.root_seed, config=config, data_fingerprint=fingerprint,
                        regions=(Region.of(f"beta_hat.{g}", i, r, m, slice(0, T), slice(0, P)),),
                    ))
        return sims + fits

    def _simulate(self, ctx: TaskContext) -> tuple[Cell, Any]:
        block = RegnetBlock.of(ctx.task)
        cell = Cell(**block.cell)
        seeds = SimulationSeeds(**block.seeds)
        if self.config.motif_model == "copula":
            M = _motif_matrix(ctx, self.config, cell, seeds)
            return cell, simulate(cell, seeds, None, self.config.custom_covariances(), M=M)
        source = _motif_source(ctx) if self.config.motif_scores is not None else None
        sim = simulate(cell, seeds, source, self.config.custom_covariances())
        return cell, sim

    def run_task(self, ctx: TaskContext) -> TaskResult:
        from regulas.sim.metrics import beta_metrics, covariance_metrics
        from regulas.workloads.regnet import blocked

        block = RegnetBlock.of(ctx.task)
        if ctx.task.kind in (blocked.SIMULATE_BLOCK, blocked.FIT_STREAMED):
            cell = Cell(**block.cell)
            M = _motif_matrix(ctx, self.config, cell, SimulationSeeds(**block.seeds))
            if ctx.task.kind == blocked.FIT_STREAMED:
                return blocked.run_fit_streamed(ctx, block, M, self.config.method_configs(), _rows)
            metrics = blocked.run_simulate_block(ctx, block, M)
            return TaskResult.of(_rows(cell, block.replicate, SIMULATION, metrics)) if metrics else TaskResult()
        cell, sim = self._simulate(ctx)
        g, i, r = block.group, block.index, block.replicate
        if ctx.task.kind == "regnet.simulate":
            for name in ("Y", "beta", "V", "Sigma", "C0", "C1"):
                value = getattr(sim, name)
                ctx.arrays.write(Region.of(f"{name}.{g}", i, r, *(slice(0, n) for n in value.shape)), value[None, None])
            if i == 0:
                ctx.arrays.write(Region.of(f"M.{g}", r, slice(0, cell.genes), slice(0, cell.motifs)), sim.M[None])
            metrics = {
                "target_fraction": cell.fraction,
                "achieved_fraction": sim.achieved_fraction,
                "sigma2_beta": sim.sigma2_beta,
                "delta": sim.delta,
                "lambda_min_Sigma": float(np.linalg.eigvalsh(sim.Sigma)[0]),
            }
            return TaskResult.of(_rows(cell, r, SIMULATION, metrics))
        assert block.method_index is not None  # a fit task
        method = self.config.method_configs()[block.method_index]
        fit = fit_method(method, sim.M, sim.Y, random_state=ctx.task.seed % 2**32)
        m = block.method_index
        ctx.arrays.write(Region.of(f"beta_hat.{g}", i, r, m, slice(0, cell.motifs), slice(0, cell.conditions)),
                         fit.coef[None, None, None])
        metrics = {
            **beta_metrics(fit.coef, sim.beta),
            **covariance_metrics(sim.V, fit.V_hat, sim.Sigma, fit.Sigma_hat),  # type: ignore[arg-type]  # formed here
            "log_likelihood": fit.log_likelihood,
            "fit_time_s": fit.fit_time_s,
            "converged": float(fit.converged),
            **fit.extra,
        }
        return TaskResult.of(_rows(cell, r, method.name, metrics))

    def reports(self) -> list[Report]:
        from regulas.workloads.regnet.reports import RegnetFigures, RegnetSummary

        return [RegnetSummary(), RegnetFigures()]


def _rows(cell: Cell, replicate: int, method: str, metrics: dict[str, float]) -> SimScoreRows:
    from regulas.workloads.regnet.tables import SimScoreRows

    n = len(metrics)
    return SimScoreRows(
        cell=[cell.label] * n,
        replicate=[replicate] * n,
        genes=[cell.genes] * n,
        conditions=[cell.conditions] * n,
        motifs=[cell.motifs] * n,
        V=[cell.V] * n,
        Sigma=[cell.Sigma] * n,
        noise_fraction=[cell.noise_fraction] * n,
        fraction=[cell.fraction] * n,
        method=[method] * n,
        metric=list(metrics),
        value=np.asarray(list(metrics.values()), dtype=float),
    )
