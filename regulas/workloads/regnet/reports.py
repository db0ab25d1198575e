"""Tables and figures of a regNet study, from its rows in ``sim_score`` (long format).

Figures (PNG): beta recovery (Pearson of beta_hat vs beta; mean +- sd over replicates, no
bar where one replicate) against the signal fraction per method, one panel per (noise
structure, V structure) -- regNet's central figure; the KL divergences of the estimated
covariance structures against the fraction (median and quartiles of the non-singular
estimates, singular and NaN shares in the legend); fit time against G.

A covariance estimate counts as *singular* when its KL divergence is infinite or above
:data:`KL_SINGULAR` (numerically singular: an eigenvalue ~1e-6 of the truth's or smaller);
such values say "failed" rather than "how far", so medians and axes leave them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from regulas.core.report import Report, ReportContext, ReportOutput
from regulas.reports.figures import mean_sd, pyplot, robust_limits
from regulas.sim.simulate import SIMULATION
from regulas.store.reading import read_frame

#: KL divergences above this (or infinite) come from (numerically) singular estimates
KL_SINGULAR = 1e6


@dataclass(frozen=True)
class KLSplit:
    """KL values split into the usable ones and the shares of singular and NaN estimates."""

    usable: np.ndarray  # finite and <= KL_SINGULAR
    singular: float  # share of values that are inf or > KL_SINGULAR
    nan: float  # share of NaN values (fit failed or KL undefined)
    n: int

    def legend(self) -> str:
        nan = f", {self.nan:.0%} NaN" if self.nan else ""
        return f"{self.singular:.0%} singular{nan}; n={self.n}"


def split_kl(values: np.ndarray | pd.Series) -> KLSplit:
    """Split KL divergences: usable values, share singular (inf or > :data:`KL_SINGULAR`), share NaN."""
    v = np.asarray(values, dtype=float)
    nan = np.isnan(v)
    singular = ~nan & ~(v <= KL_SINGULAR)
    n = v.size
    return KLSplit(v[~nan & ~singular], float(singular.sum() / n) if n else 0.0,
                   float(nan.sum() / n) if n else 0.0, n)


def load_results(engine: Engine, study_id: int) -> pd.DataFrame:
    """All ``sim_score`` rows of a study: cell, replicate, grid columns, method, metric, value (NaN kept)."""
    df = read_frame(
        engine,
        text("SELECT cell, replicate, genes, conditions, motifs, V, Sigma, noise_fraction, fraction, method, "
             "metric, value, value_is_nan FROM sim_score WHERE study_id = :s"),
        {"s": study_id},
    )
    df["noise"] = [s if nf == 0 else f"{s} (f_N={nf:g})" for s, nf in zip(df.Sigma, df.noise_fraction)]
    return df


def wide(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (cell, replicate): the grid columns and one column of ``metric`` per method."""
    keys = ["cell", "replicate", "genes", "conditions", "motifs", "V", "noise", "fraction"]
    part = df[(df.metric == metric) & (df.method != SIMULATION)]
    return part.pivot_table(index=keys, columns="method", values="value", aggfunc="first", dropna=False).reset_index()


def paired_comparison(df: pd.DataFrame, a: str, b: str, metric: str = "pearson",
                      by: tuple[str, ...] = ("noise", "V", "fraction")) -> pd.DataFrame:
    """Mean ``metric`` of methods a and b and their paired difference a - b (same data) per group.

    Columns: the ``by`` keys, n (pairs), mean_a, mean_b, diff, se (standard error of the mean
    difference) and wins (share of pairs with a > b).
    """
    w = wide(df, metric).dropna(subset=[a, b])
    w["diff"] = w[a] - w[b]
    g = w.groupby(list(by))
    out = pd.DataFrame({
        "n": g.size(),
        f"{a}": g[a].mean(),
        f"{b}": g[b].mean(),
        "diff": g["diff"].mean(),
        "se": g["diff"].std(ddof=1) / np.sqrt(g.size()),
        "wins": g["diff"].apply(lambda d: float(np.mean(d > 0))),
    })
    return out.reset_index()


def summary_text(df: pd.DataFrame) -> str:
    sim = df[df.method == SIMULATION]
    achieved = sim[sim.metric == "achieved_fraction"]
    lines = []
    if len(achieved):
        worst = float(np.max(np.abs(achieved.value.to_numpy() - achieved.fraction.to_numpy())))
        lines.append(f"{len(achieved)} simulated data sets; largest |achieved - target signal fraction| = {worst:.1e}")
    fits = df[df.method != SIMULATION]
    table = fits.pivot_table(index="method", columns="metric", values="value", aggfunc="median")
    kl_notes = []
    for metric in ("kl_V", "kl_Sigma"):
        for name, grp in fits[fits.metric == metric].groupby("method"):
            split = split_kl(grp.value)
            table.loc[name, metric] = float(np.median(split.usable)) if split.usable.size else np.nan
            if split.singular or split.nan:
                kl_notes.append(f"{name} {metric}: {split.legend()}")
    converged = fits[fits.metric == "converged"].groupby("method").value
    n_conv, n_fits = converged.sum().to_dict(), converged.size().to_dict()
    lines.append("medians over the grid:")
    lines.append(f"{'method':<16} {'pearson':>8} {'R2(beta)':>9} {'KL(V)':>9} {'KL(Sigma)':>10} {'fit s':>8}  converged")
    for name, row in table.iterrows():
        lines.append(f"{name:<16} {row.get('pearson', np.nan):>8.4f} {row.get('r2_beta', np.nan):>9.4f} "
                     f"{row.get('kl_V', np.nan):>9.4g} {row.get('kl_Sigma', np.nan):>10.4g} "
                     f"{row.get('fit_time_s', np.nan):>8.3g}  {int(n_conv[name])}/{int(n_fits[name])}")
    if kl_notes:
        lines.append(f"KL medians leave out singular estimates (KL = inf or > {KL_SINGULAR:g}) and NaN: "
                     + "; ".join(kl_notes))
    pearson = wide(df, "pearson")
    methods = [c for c in pearson.columns if c not in ("cell", "replicate", "genes", "conditions", "motifs", "V",
                                                         "noise", "fraction")]
    if methods:
        lines.append("mean Pearson(beta_hat, beta) by noise structure:")
        by_noise = pearson.groupby("noise")[methods].mean()
        lines.append(f"{'noise':<24} " + " ".join(f"{m:>10}" for m in methods))
        for noise, row in by_noise.iterrows():
            lines.append(f"{noise:<24} " + " ".join(f"{row[m]:>10.4f}" for m in methods))
    return "\n".join(lines)


def plot_recovery(df: pd.DataFrame, path: Path, metric: str = "pearson") -> Path:
    """Mean +- sd over replicates of ``metric`` against the signal fraction, per method; panels: noise x V.

    The sd is the sample sd (ddof=1, :func:`~regulas.reports.figures.mean_sd`); a point of
    a single replicate gets no bar.
    """
    plt = pyplot()
    fits = df[(df.method != SIMULATION) & (df.metric == metric)]
    noises, Vs, methods = sorted(fits.noise.unique()), sorted(fits.V.unique()), sorted(fits.method.unique())
    fig, axes = plt.subplots(len(noises), len(Vs), figsize=(3.2 * len(Vs), 2.6 * len(noises)),
                             sharex=True, sharey=True, squeeze=False)
    for (i, noise), (j, V) in ((a, b) for a in enumerate(noises) for b in enumerate(Vs)):
        ax = axes[i][j]
        panel = fits[(fits.noise == noise) & (fits.V == V)]
        for method in methods:
            stats = {f: mean_sd(g.value) for f, g in panel[panel.method == method].groupby("fraction")}
            x = np.array(list(stats), dtype=float)
            mean = np.array([m.mean for m in stats.values()])
            sd = np.array([m.sd for m in stats.values()])
            n = [m.n for m in stats.values()]
            reps = f"{min(n)}" if n and min(n) == max(n) else f"{min(n, default=0)}-{max(n, default=0)}"
            line, = ax.plot(x, mean, marker="o", ms=3, label=f"{method} (n={reps} replicates)")
            bar = np.isfinite(sd)  # sd of one replicate is undefined: no bar
            if bar.any():
                ax.errorbar(x[bar], mean[bar], yerr=sd[bar], fmt="none", ecolor=line.get_color(), capsize=2)
        ax.set_title(f"V={V}, Sigma={noise}", fontsize=8)
        ax.grid(alpha=0.3)
        if i == len(noises) - 1:
            ax.set_xlabel("signal fraction f")
        if j == 0:
            ax.set_ylabel(f"{metric}(beta_hat, beta)\nmean ± sd over replicates", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_results(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """The three figures of a study into ``out_dir``."""
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [plot_recovery(df, out_dir / "regnet_beta_recovery.png")]
    fits = df[df.method != SIMULATION]
    methods = sorted(fits.method.unique())

    fig, axes = plt.subplots(1, 2, figsize=(11, 5.0))
    for ax, metric, what in zip(axes, ("kl_V", "kl_Sigma"), ("signal V", "noise Sigma")):
        part = fits[fits.metric == metric]
        shown: list[np.ndarray] = []
        for method in methods:
            values = part[part.method == method]
            split = split_kl(values.value)
            rows = values[values.value.isin(split.usable)] if split.usable.size else values.iloc[:0]
            q = rows.groupby("fraction").value.quantile([0.25, 0.5, 0.75]).unstack()
            if q.empty:
                ax.plot([], [], marker="o", label=f"{method}: {split.legend()} (none to plot)")
                continue
            line, = ax.plot(q.index, q[0.5].to_numpy(), marker="o", label=f"{method}: {split.legend()}")
            ax.fill_between(q.index, q[0.25].to_numpy(), q[0.75].to_numpy(), color=line.get_color(), alpha=0.15)
            shown.append(q.to_numpy().ravel())
        clip = robust_limits(np.concatenate(shown) if shown else [], log=True, quantiles=(0.0, 1.0))
        ax.set(xlabel="signal fraction f", yscale="log", ylim=(clip.low, clip.high),
               ylabel=f"KL, {what}: median over replicates\n(band: quartiles; singular left out)",
               title=f"KL(N(0, {what.split()[1]}) || N(0, estimate / trace))")
        ax.legend(fontsize=7, title=f"share of fits with a singular estimate (KL = inf or > {KL_SINGULAR:g})",
                  title_fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(out_dir / "regnet_kl.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    part = fits[(fits.metric == "fit_time_s") & (fits.value > 0)]  # a log axis: no 0, no NaN
    for (method, P, T), grp in part.groupby(["method", "conditions", "motifs"]):
        s = grp.groupby("genes").value.median()
        ax.plot(s.index, s.to_numpy(), marker="o", label=f"{method} (P={P}, T={T})")
    ax.set(xlabel="genes G", ylabel="median fit time per fit [s]", yscale="log", title="fit time vs G (1 thread)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / "regnet_fit_time.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def _results(ctx: ReportContext) -> pd.DataFrame:
    if "regnet.results" not in ctx.cache:
        ctx.cache["regnet.results"] = load_results(ctx.db, ctx.study_id)
    frame: pd.DataFrame = ctx.cache["regnet.results"]
    return frame


class RegnetSummary(Report):
    """Medians of every metric per method and mean beta recovery per noise structure (printed after a run)."""

    name = "summary"

    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        df = _results(ctx)
        return ReportOutput(frame=df, text=summary_text(df), title="scores of every simulated data set and method")


class RegnetFigures(Report):
    """beta recovery against the signal fraction, covariance KL divergences, fit time against G."""

    name = "figures"

    def write(self, ctx: ReportContext, inputs: Mapping[str, pd.DataFrame | None]) -> ReportOutput:
        return ReportOutput(files=plot_results(_results(ctx), ctx.out_dir), title="β recovery, covariance KL divergences, fit time")
