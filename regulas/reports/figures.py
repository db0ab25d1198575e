"""What every figure of every report shares: a headless backend, one way to save, and
the helpers that keep a figure readable when a few values are extreme.

- :func:`robust_limits` chooses axis limits from a quantile range of the finite values
  (optionally within hard bounds, e.g. R² no lower than -1) and counts what falls outside;
- :func:`mark_outside` draws those outside points as arrow markers at the axis edge with
  their count, so a figure never hides them silently; :func:`clip_note` says it in words;
- :func:`mean_sd` is the one definition of an error bar (mean +- sample sd; no bar for n < 2);
- :func:`short_label` shortens long event IDs (``GENE:TYPE:chr:coords...``) for tick labels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: default quantile range of :func:`robust_limits` (1st to 99th percentile)
QUANTILES = (0.01, 0.99)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (workers and CI have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Figure, path: Path, *, dpi: int = 110, tight: bool = True) -> Path:
    """Write ``fig`` as PNG to ``path`` (folders made as needed) and close it.

    ``tight``: lay out with ``tight_layout`` (else the saved box is fitted to the content).
    """
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    else:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


@dataclass(frozen=True)
class Clip:
    """Axis limits ``[low, high]`` and what of the values lies outside them.

    ``below``/``above``: finite values outside the limits; ``nonfinite``: NaN and +-inf
    values (never drawn); ``n``: all values given; ``minimum``/``maximum``: of the finite values.
    """

    low: float
    high: float
    below: int
    above: int
    nonfinite: int
    n: int
    minimum: float
    maximum: float

    @property
    def outside(self) -> int:
        """Finite values outside the limits."""
        return self.below + self.above

    def count(self, values: Iterable[float]) -> tuple[int, int]:
        """(below, above) of ``values`` against these limits (non-finite values ignored)."""
        v = _finite(values)
        return int(np.sum(v < self.low)), int(np.sum(v > self.high))

    def clipped(self, values: Iterable[float]) -> np.ndarray:
        """``values`` moved into the limits (to draw outside points at the edge)."""
        return np.clip(np.asarray(list(values) if not isinstance(values, np.ndarray) else values, float),
                       self.low, self.high)


def _finite(values: Iterable[float]) -> np.ndarray:
    v = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float).ravel()
    return v[np.isfinite(v)]


def robust_limits(
    values: Iterable[float],
    *,
    quantiles: tuple[float, float] = QUANTILES,
    bounds: tuple[float | None, float | None] = (None, None),
    include: Sequence[float] = (),
    pad: float = 0.05,
    reach: float = 0.5,
    log: bool = False,
) -> Clip:
    """Limits spanning the ``quantiles`` of the finite values, and what falls outside them.

    The range is the ``quantiles`` range of the finite ``values``, widened to cover
    ``include`` (reference values such as 0 or 1). On each side, the limit goes on to the
    most extreme value within ``reach`` of the range's width beyond it (a tail is shown
    whole); only values farther out are cut (far outliers). Both
    limits are then padded by ``pad`` of the width and cut to ``bounds`` (``None`` = no
    bound). With ``log`` all this happens on log10 and values <= 0 count as non-finite.
    Finite values strictly outside the limits are counted in ``below``/``above``.
    """
    raw = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float).ravel()
    keep = np.isfinite(raw) & (raw > 0) if log else np.isfinite(raw)
    finite = raw[keep]
    n, nonfinite = raw.size, int(raw.size - finite.size)
    ref = np.asarray(include, dtype=float)
    if log:
        ref = ref[ref > 0]
    t = np.log10(finite) if log else finite
    r = list(np.log10(ref) if log else ref)
    if t.size == 0 and not r:
        low, high = (0.0, 1.0)
    else:
        q_low, q_high = (float(x) for x in np.quantile(t, quantiles)) if t.size else (min(r), max(r))
        low, high = min([q_low, *r]), max([q_high, *r])
        width = high - low if high > low else (abs(high) or 1.0)
        near = t[(t >= low - reach * width) & (t <= high + reach * width)]
        if near.size:  # the tails within reach are shown whole; only far values are cut
            low, high = min(low, float(near.min())), max(high, float(near.max()))
        width = high - low if high > low else (abs(high) or 1.0)
        low, high = low - pad * width, high + pad * width
    if log:
        low, high = 10.0**low, 10.0**high
    lo_bound, hi_bound = bounds
    if lo_bound is not None:
        low = max(low, lo_bound)
    if hi_bound is not None:
        high = min(high, hi_bound)
    if high <= low:
        high = low * 10 if log else low + (abs(low) * 0.1 or 1.0)
    below, above = int(np.sum(finite < low)), int(np.sum(finite > high))
    minimum = float(finite.min()) if finite.size else math.nan
    maximum = float(finite.max()) if finite.size else math.nan
    return Clip(float(low), float(high), below, above, nonfinite, n, minimum, maximum)


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.2g}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def clip_note(clip: Clip, what: str = "values") -> str:
    """One line saying which values lie outside the axis ('' when none do).

    E.g. ``"2 of 9939 values below -1.05 (down to -11,500) drawn as ▼ at the edge"``.
    """
    parts = []
    if clip.below:
        parts.append(f"{clip.below} below {_fmt(clip.low)} (down to {_fmt(clip.minimum)})")
    if clip.above:
        parts.append(f"{clip.above} above {_fmt(clip.high)} (up to {_fmt(clip.maximum)})")
    if not parts:
        return ""
    return f"{' and '.join(parts)} of {clip.n - clip.nonfinite} {what} lie outside the axis, marked ▲/▼ at its edge"


def mark_outside(
    ax: Axes, positions: Sequence[float], groups: Sequence[Iterable[float]], clip: Clip, *, axis: str = "y",
    color: str = "firebrick",
) -> int:
    """Mark the values of each group outside ``clip`` by an arrow head at the axis edge and their count.

    ``positions[i]`` is where group ``i`` sits on the other axis (e.g. a box's x position).
    Sets the limits of ``axis`` to the clip; returns the number of values marked.
    """
    from matplotlib.transforms import blended_transform_factory

    vertical = axis == "y"
    if vertical:
        ax.set_ylim(clip.low, clip.high)
        trans = blended_transform_factory(ax.transData, ax.transAxes)
    else:
        ax.set_xlim(clip.low, clip.high)
        trans = blended_transform_factory(ax.transAxes, ax.transData)
    total = 0
    for pos, values in zip(positions, groups):
        below, above = clip.count(values)
        for count, edge in ((below, 0.0), (above, 1.0)):
            if not count:
                continue
            total += count
            inset = 0.015 if edge == 0.0 else -0.015
            if vertical:
                xy, marker, text_offset, ha, va = (pos, edge + inset), "v" if edge == 0.0 else "^", (7, 0), "left", "center"
            else:
                xy, marker, text_offset = (edge + inset, pos), "<" if edge == 0.0 else ">", (0, 7)
                ha, va = "center", "bottom"
            ax.plot(*xy, marker=marker, color=color, ms=8, transform=trans, clip_on=False, zorder=5)
            ax.annotate(f"{count}", xy, xycoords=trans, xytext=text_offset, textcoords="offset points",
                        ha=ha, va=va, fontsize=8, color=color, fontweight="bold", zorder=5)
    return total


@dataclass(frozen=True)
class MeanSd:
    """Mean, sample standard deviation (ddof=1; NaN when n < 2) and n of the finite values."""

    mean: float
    sd: float
    n: int


def mean_sd(values: Iterable[float]) -> MeanSd:
    """Mean +- sample sd of the finite ``values``: the one error bar of every figure.

    The sd of fewer than two values is undefined: NaN, and a figure then draws no bar
    (never a silent 0). The mean of no values is NaN.
    """
    v = _finite(values)
    mean = float(v.mean()) if v.size else math.nan
    sd = float(v.std(ddof=1)) if v.size >= 2 else math.nan
    return MeanSd(mean, sd, int(v.size))


#: an rMATS-style event type (SE, RI, MXE, A3SS, A5SS, AFE, ALE, ...)
_EVENT_TYPE = re.compile(r"^[A-Z][A-Z0-9]{1,5}$")


def short_label(event: str, index: int | None = None, *, width: int = 24) -> str:
    """A short label of an event ID for ticks and titles: gene, type and ``#index``.

    ``GENE:TYPE:chr:coords...`` becomes ``GENE TYPE #index``; any other ID is cut to
    ``width`` characters (with ``…``). ``index`` (the event's position on the study's
    event axis) makes labels of distinct events distinct, since one gene has many
    events of a type; the full ID stays in the tables.
    """
    parts = event.split(":")
    if len(parts) >= 3 and parts[0] and _EVENT_TYPE.match(parts[1]):
        base = f"{parts[0]} {parts[1]}"
    else:
        base = event
    if len(base) > width:
        base = base[: width - 1] + "…"
    return base if index is None else f"{base} #{index}"
