"""The regnet workload at large P (``regnet.block_conditions`` set): Y written by condition blocks,
fits streamed from Zarr.

Tasks per data set (cell, replicate) of a (G, P, T) group ``<g>`` with b = block_conditions:

* ``regnet.simulate_block``, one per block j of conditions [j b, (j + 1) b): draws Y[:, block]
  and beta[:, block] (:class:`regulas.sim.blocked.BlockedDesign`) from the data set's seeds
  and the block's own seeds (:class:`regulas.sim.blocked.BlockSeeds`, derived from the root
  seed and stored in the task block and in ``block_seed.<g>``), writes them into the chunks it
  alone owns, and writes its seeds into ``block_seed.<g>`` **last**, as the mark that the
  block is complete. Block 0 also writes the factor forms of V and Sigma, and (for the first
  cell of the group) M; it returns the scales as ``simulation`` rows.
* ``regnet.fit_streamed``, one per data set: reads Y block by block from Zarr into one G x P
  array while accumulating the setup (:class:`regulas.sim.streamed_setup.ConditionSetup`),
  then fits every method to it and writes beta_hat for each. The engine has no task
  dependencies, so a block whose mark is absent (its task has not run yet) is drawn from its
  seeds instead, with the same function: the result does not depend on the order tasks run
  in, and ``blocks_from_zarr`` in the results says how many were read.

Arrays of a blocked group: ``Y.<g>`` (cells, R, G, P) and ``beta.<g>`` (cells, R, T, P) in
chunks of (1, 1, G, b) and (1, 1, T, b); ``block_seed.<g>`` (cells, R, blocks, 2) int64 (beta,
noise seed); ``V_factor.<g>`` / ``Sigma_factor.<g>`` (cells, R, P, k) with ``V_diag.<g>`` /
``Sigma_diag.<g>`` (cells, R, P) (trace-1 structures; unused factor columns are 0);
``M.<g>`` (R, G, T); ``beta_hat.<g>`` (cells, R, methods, T, P). No P x P array.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import numpy as np

from regulas.core.task import Region, Task, make_task
from regulas.core.workload import StudyContext, TaskContext, TaskResult
from regulas.sim.blocked import BlockedDesign, BlockSeeds, block_slices
from regulas.sim.covariance import factor_rank, lowrank_blocks
from regulas.sim.factor_covariance import RANDOM_FACTOR_RANK
from regulas.sim.methods import MethodConfig, fit_method, make_estimator
from regulas.sim.metrics import beta_metrics, factor_structure, kl_gaussian_factor
from regulas.sim.simulate import SIMULATION, Cell, SimulationSeeds
from regulas.sim.streamed_setup import ConditionSetup
from regulas.store.arrays import ArraySpec

SIMULATE_BLOCK = "regnet.simulate_block"
FIT_STREAMED = "regnet.fit_streamed"


def factor_width(cell_names: list[tuple[str, str]], P: int) -> tuple[int, int]:
    """The largest factor ranks (V, Sigma) among a group's cells (at least 1: Zarr needs a non-empty axis)."""
    kv = ks = 1
    for v, s in cell_names:
        k_v = lowrank_blocks(v, P) or 0
        base = s.removesuffix("V") if s in ("randomV", "identityV") else s
        k_s = min(RANDOM_FACTOR_RANK, P - 1) if base == "random" else factor_rank(base) or 0
        kv = max(kv, k_v)
        ks = max(ks, k_s + (k_v if s.endswith("V") else 0))
    return kv, ks


def create_arrays(ctx: StudyContext, g: str, cells: list[Cell], R: int, n_methods: int, width: int) -> None:
    """The Zarr arrays of a blocked group ``g`` (cells in grid order, R replicates)."""
    n = len(cells)
    G, P, T = cells[0].genes, cells[0].conditions, cells[0].motifs
    b = min(width, P)
    nb = len(block_slices(P, b))
    kv, ks = factor_width([(c.V, c.Sigma) for c in cells], P)
    where = f"; cells of group {g} in grid order (task block 'index'), written by condition blocks of {b}"
    a = ctx.arrays
    for name, tail, chunk, dims, what in (
        ("Y", (G, P), (G, b), ("gene", "condition"), "simulated expression"),
        ("beta", (T, P), (T, b), ("motif", "condition"), "true motif activities"),
        ("V_factor", (P, kv), (P, kv), ("condition", "factor"), "factor F of V = F F^T + diag(V_diag), trace 1"),
        ("V_diag", (P,), (P,), ("condition",), "diagonal of V"),
        ("Sigma_factor", (P, ks), (P, ks), ("condition", "factor"), "factor H of Sigma = H H^T + diag(Sigma_diag), trace 1"),
        ("Sigma_diag", (P,), (P,), ("condition",), "diagonal of Sigma"),
    ):
        a.create(ArraySpec(f"{name}.{g}", (n, R, *tail), (1, 1, *chunk), dims=("cell", "replicate", *dims),
                           description=what + where))
    a.create(ArraySpec(f"block_seed.{g}", (n, R, nb, 2), (1, 1, 1, 2), dtype="int64", fill_value=0,
                       dims=("cell", "replicate", "block", "seed"),
                       description="(beta, noise) seeds of each condition block, written last: the block is complete" + where))
    a.create(ArraySpec(f"M.{g}", (R, G, T), (1, G, T), dims=("replicate", "gene", "motif"),
                       description="motif scores M of each replicate (shared by the cells of the group)"))
    a.create(ArraySpec(f"beta_hat.{g}", (n, R, n_methods, T, P), (1, 1, 1, T, P),
                       dims=("cell", "replicate", "method", "motif", "condition"),
                       description="estimated beta per method (regnet.methods order)" + where))


def plan_group(ctx: StudyContext, g: str, cells: list[Cell], R: int, methods: list[dict[str, Any]], width: int,
               config: dict[str, Any], fingerprint: str, block_type: Any) -> tuple[list[Task], list[Task]]:
    """(simulation tasks, fit tasks) of a blocked group; ``block_type`` is the workload's block dataclass."""
    G, P, T = cells[0].genes, cells[0].conditions, cells[0].motifs
    b = min(width, P)
    slices = block_slices(P, b)
    kv, ks = factor_width([(c.V, c.Sigma) for c in cells], P)
    sims, fits = [], []
    for (i, cell), r in ((ic, r) for ic in enumerate(cells) for r in range(R)):
        seeds = SimulationSeeds.derive(ctx.root_seed, cell, r)
        block_seeds = [BlockSeeds.derive(ctx.root_seed, cell, r, j, b) for j in range(len(slices))]
        base = block_type(cell=dict(cell.__dict__), group=g, index=i, replicate=r, seeds=dict(seeds.__dict__), width=b)
        for j, cols in enumerate(slices):
            owned = [Region.of(f"Y.{g}", i, r, slice(0, G), cols), Region.of(f"beta.{g}", i, r, slice(0, T), cols),
                     Region.of(f"block_seed.{g}", i, r, j, slice(0, 2))]
            if j == 0:
                owned += [Region.of(f"V_factor.{g}", i, r, slice(0, P), slice(0, kv)), Region.of(f"V_diag.{g}", i, r, slice(0, P)),
                          Region.of(f"Sigma_factor.{g}", i, r, slice(0, P), slice(0, ks)),
                          Region.of(f"Sigma_diag.{g}", i, r, slice(0, P))]
                if i == 0:
                    owned.append(Region.of(f"M.{g}", r, slice(0, G), slice(0, T)))
            block = replace(base, condition_block=j, block_seeds=[list(block_seeds[j].__dict__.values())])
            sims.append(make_task(study=ctx.name, kind=SIMULATE_BLOCK, block=block.json(), root_seed=ctx.root_seed,
                                  config=config, data_fingerprint=fingerprint, regions=tuple(owned)))
        fit_block = replace(base, block_seeds=[list(s.__dict__.values()) for s in block_seeds])
        fits.append(make_task(
            study=ctx.name, kind=FIT_STREAMED, block=fit_block.json(), root_seed=ctx.root_seed, config=config,
            data_fingerprint=fingerprint,
            regions=tuple(Region.of(f"beta_hat.{g}", i, r, m, slice(0, T), slice(0, P)) for m in range(len(methods))),
        ))
    return sims, fits


_DESIGNS: OrderedDict[tuple[Any, ...], BlockedDesign] = OrderedDict()


def design_of(cell: Cell, seeds: SimulationSeeds, M: np.ndarray) -> BlockedDesign:
    """The data set's shared draws, kept for the last two data sets a worker process saw."""
    key = (tuple(cell.__dict__.values()), tuple(seeds.__dict__.values()), id(M))
    if key not in _DESIGNS:
        _DESIGNS[key] = BlockedDesign.draw(cell, seeds, M)
        while len(_DESIGNS) > 2:
            _DESIGNS.popitem(last=False)
    return _DESIGNS[key]


def run_simulate_block(ctx: TaskContext, block: Any, M: np.ndarray) -> dict[str, float] | None:
    """Draw and write one block; the scales (block 0 only) as metrics of the ``simulation`` rows."""
    cell, g, i, r, j = Cell(**block.cell), block.group, block.index, block.replicate, block.condition_block
    t0 = time.perf_counter()
    design = design_of(cell, SimulationSeeds(**block.seeds), M)
    cols = block_slices(cell.conditions, block.width)[j]
    beta_seed, noise_seed = block.block_seeds[0]
    Y_b, beta_b = design.block(cols, BlockSeeds(beta_seed, noise_seed))
    a = ctx.arrays
    a.write(Region.of(f"Y.{g}", i, r, slice(0, cell.genes), cols), Y_b[None, None])
    a.write(Region.of(f"beta.{g}", i, r, slice(0, cell.motifs), cols), beta_b[None, None])
    metrics = None
    if j == 0:
        P = cell.conditions
        for name, cov in (("V", design.V), ("Sigma", design.Sigma)):
            k = a.array(f"{name}_factor.{g}").shape[-1]
            F = np.zeros((P, k))
            F[:, : cov.rank] = cov.factor
            a.write(Region.of(f"{name}_factor.{g}", i, r, slice(0, P), slice(0, k)), F[None, None])
            a.write(Region.of(f"{name}_diag.{g}", i, r, slice(0, P)), cov.diag[None, None])
        if i == 0:
            a.write(Region.of(f"M.{g}", r, slice(0, cell.genes), slice(0, cell.motifs)), M[None])
        metrics = {"target_fraction": cell.fraction, "sigma2_beta": design.sigma2_beta, "delta": design.delta,
                   "lambda_max_Sigma": design.Sigma.largest_eigenvalue(), "block0_seconds": time.perf_counter() - t0}
    # last: the mark that this block's Y and beta are complete
    a.write(Region.of(f"block_seed.{g}", i, r, j, slice(0, 2)), np.array([[[[beta_seed, noise_seed]]]], dtype=np.int64))
    return metrics


def read_data_set(ctx: TaskContext, block: Any, M: np.ndarray) -> tuple[np.ndarray, np.ndarray, ConditionSetup, int]:
    """Y (G x P) and beta (T x P) of the data set, block by block from Zarr (a block without its mark is
    drawn from its seeds), with the setup accumulated on the way; and how many blocks came from Zarr."""
    cell, g, i, r = Cell(**block.cell), block.group, block.index, block.replicate
    G, P, T = cell.genes, cell.conditions, cell.motifs
    marks = ctx.arrays.read(f"block_seed.{g}", (i, r))
    setup = ConditionSetup.start(M, P)
    Y, beta = np.empty((G, P)), np.empty((T, P))
    from_zarr = 0
    for j, cols in enumerate(block_slices(P, block.width)):
        seeds = block.block_seeds[j]
        if list(marks[j]) == list(seeds):
            Y_b = ctx.arrays.read(f"Y.{g}", (i, r, slice(None), cols))
            beta_b = ctx.arrays.read(f"beta.{g}", (i, r, slice(None), cols))
            from_zarr += 1
        else:
            Y_b, beta_b = design_of(cell, SimulationSeeds(**block.seeds), M).block(cols, BlockSeeds(*seeds))
        setup.add(cols, Y_b)
        Y[:, cols] = Y_b
        beta[:, cols] = beta_b
        del Y_b
    return Y, beta, setup, from_zarr


def factor_kl(V: Any, Sigma: Any, V_hat: tuple[np.ndarray, np.ndarray],
              Sigma_hat: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """kl_V and kl_Sigma as the small-P path stores them (each estimate scaled to trace 1), computed from
    factor forms (``FactorCovariance`` truths, (F, d) estimates) in O(P k^2): ``inf`` for a singular
    estimate (a low-rank C0)."""
    out = {}
    for name, true, (F, d) in (("kl_V", V, V_hat), ("kl_Sigma", Sigma, Sigma_hat)):
        out[name] = kl_gaussian_factor(true.factor, true.diag, *factor_structure(F, d))
    return out


def run_fit_streamed(ctx: TaskContext, block: Any, M: np.ndarray, methods: list[MethodConfig],
                     rows: Any) -> TaskResult:
    """Fit every method to one data set read from Zarr; ``rows(cell, r, method, metrics)`` makes result rows."""
    cell, g, i, r = Cell(**block.cell), block.group, block.index, block.replicate
    P, T = cell.conditions, cell.motifs
    random_state = ctx.task.seed % 2**32
    for m in methods:  # fail before reading anything when a method cannot be fitted here
        make_estimator(m, random_state)
    t0 = time.perf_counter()
    Y, beta, setup, from_zarr = read_data_set(ctx, block, M)
    out = [rows(cell, r, SIMULATION, {"achieved_fraction": setup.fraction(beta), "blocks_from_zarr": float(from_zarr),
                                            "read_setup_s": time.perf_counter() - t0})]
    for m_index, method in enumerate(methods):
        fit = fit_method(method, M, Y, random_state=random_state, covariances=False, block_width=block.width, setup=setup)
        ctx.arrays.write(Region.of(f"beta_hat.{g}", i, r, m_index, slice(0, T), slice(0, P)), fit.coef[None, None, None])
        metrics = {**beta_metrics(fit.coef, beta), "log_likelihood": fit.log_likelihood, "fit_time_s": fit.fit_time_s,
                   "converged": float(fit.converged), **fit.extra}
        if fit.V_factors is not None and fit.Sigma_factors is not None:  # the LMM: KL from the factors, no P x P
            design = design_of(cell, SimulationSeeds(**block.seeds), M)
            metrics.update(factor_kl(design.V, design.Sigma, fit.V_factors, fit.Sigma_factors))
        out.append(rows(cell, r, method.name, metrics))
    return TaskResult.of(*out)
