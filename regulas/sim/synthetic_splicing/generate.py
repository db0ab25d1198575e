"""Generate a data set into a folder: expression, PSI (block by block), truth, README.

Memory: the (N, P) expression and its standardized copy, plus one block of events (N x
block) a few times over (latent, PSI, missingness score); never the whole PSI table.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from regulas.core.errors import ConfigError
from regulas.sim.synthetic_splicing.calibration import Calibration, calibrate
from regulas.sim.synthetic_splicing.model import (
    MAX_MISSING,
    TILE,
    EventTile,
    FeatureModel,
    Settings,
    draw_depth,
    draw_expression,
    draw_tile,
    feature_model,
    tile_events,
)
from regulas.sim.synthetic_splicing.writers import FORMATS, LAYOUT, Format, psi_writer, suffix

#: Default events per written block (the study's block size in configs/splicing_tcga.yaml).
BLOCK_EVENTS = 1000
DEFAULT = Settings()
MIN_SAMPLES = 5


@dataclass(frozen=True)
class Shape:
    samples: int
    rbps: int
    events: int


def need(ok: bool, key: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"invalid value (given: {value!r}); expected {expected}", key=key)


def check(shape: Shape, settings: Settings, seed: int) -> None:
    """Every model argument in range, before any work: one ConfigError naming the option."""

    need(isinstance(shape.samples, int) and shape.samples >= MIN_SAMPLES, "--samples", shape.samples, f"an integer >= {MIN_SAMPLES}")
    need(isinstance(shape.rbps, int) and shape.rbps >= 1, "--rbps", shape.rbps, "an integer >= 1")
    need(isinstance(shape.events, int) and shape.events >= 1, "--events", shape.events, "an integer >= 1")
    need(0.0 <= settings.missing_rate < MAX_MISSING, "--missing-rate", settings.missing_rate, f"a fraction in [0, {MAX_MISSING})")
    need(settings.missing_pattern in ("coverage", "uniform"), "--missing-pattern", settings.missing_pattern, "'coverage' or 'uniform'")
    need(0.0 <= settings.regulated_fraction <= 1.0, "--regulated-fraction", settings.regulated_fraction, "a fraction in [0, 1]")
    need(settings.regulators_per_event >= 1.0, "--regulators-per-event", settings.regulators_per_event, "a mean >= 1")
    need(settings.max_regulators >= 1, "--max-regulators", settings.max_regulators, "an integer >= 1")
    need(0.0 < settings.signal < 1.0, "--signal", settings.signal, "a fraction in (0, 1)")
    need(isinstance(seed, int) and seed >= 0, "--seed", seed, "an integer >= 0")


class SyntheticSplicing:
    """One data set: its calibration, RBP columns, expression and event tiles (in memory).

    Shapes: X (N, P) expression; each tile's PSI (N, t), t <= ``TILE``.
    """

    def __init__(self, shape: Shape, settings: Settings = DEFAULT, seed: int = 0, calibration: Calibration | None = None) -> None:
        check(shape, settings, seed)
        self.shape, self.settings, self.seed = shape, settings, seed
        self.cal = calibration if calibration is not None else calibrate()
        self.features: FeatureModel = feature_model(self.cal, shape.rbps, seed)
        self.X = draw_expression(self.features, shape.samples, seed)
        self.Xs = (self.X - self.features.mean) / self.features.sd
        self.depth = draw_depth(shape.samples, seed)
        self.samples = np.array([f"S{i:06d}" for i in range(shape.samples)], dtype=object)

    @property
    def n_tiles(self) -> int:
        return math.ceil(self.shape.events / TILE)

    def tile(self, index: int) -> EventTile:
        return draw_tile(self.cal, self.features, self.Xs, self.depth, self.settings, self.seed, index, self.shape.events)

    def blocks(self, block_events: int) -> Iterator[list[EventTile]]:
        """Tiles grouped into blocks of about ``block_events`` events (whole tiles)."""
        per = max(1, math.ceil(block_events / TILE))
        for first in range(0, self.n_tiles, per):
            yield [self.tile(i) for i in range(first, min(first + per, self.n_tiles))]

    def event_names(self) -> list[str]:
        """All event IDs, without drawing any PSI."""
        return [str(n) for i in range(self.n_tiles) for n in tile_events(self.cal, self.seed, i, self.shape.events)[1]]


@dataclass
class Tally:
    """Realised figures over all cells, accumulated block by block."""

    cells: int = 0
    observed: int = 0
    zeros: int = 0
    ones: int = 0
    regulated_events: int = 0
    regulators: int = 0
    event_missing: list[float] = field(default_factory=list)

    def add(self, tile: EventTile) -> None:
        psi = tile.psi
        seen = ~np.isnan(psi)
        self.cells += psi.size
        self.observed += int(seen.sum())
        self.zeros += int((psi == 0).sum())
        self.ones += int((psi == 1).sum())
        self.regulated_events += int((tile.events["n_regulators"] > 0).sum())
        self.regulators += int(tile.regulators[0].size)
        self.event_missing.extend(tile.events["missing_rate"].tolist())

    def figures(self) -> dict[str, float | int | list[float]]:
        em = np.array(self.event_missing)
        return {
            "missing_fraction": 1.0 - self.observed / self.cells,
            "zero_fraction_of_observed": self.zeros / self.observed,
            "one_fraction_of_observed": self.ones / self.observed,
            "events_with_missing": float((em > 0).mean()),
            "event_missing_rate_quantiles_10_50_90_max": [float(q) for q in np.quantile(em, [0.1, 0.5, 0.9, 1.0])],
            "regulated_events": self.regulated_events,
            "planted_regulators": self.regulators,
        }


EVENT_COLUMNS = (
    "event_type", "source_event", "n_regulators", "signal_fraction", "zero_rate", "one_rate", "logit_mean", "logit_sd", "coverage", "missing_rate"
)


def _truth_rows(tile: EventTile, rbp_names: np.ndarray) -> tuple[list[str], list[str]]:
    ev = tile.events
    events = [
        "\t".join([str(tile.names[j])] + [_fmt(ev[c][j]) for c in EVENT_COLUMNS]) for j in range(tile.names.size)
    ]
    pos, rbp, effect = tile.regulators
    regs = [f"{tile.names[p]}\t{rbp_names[r]}\t{r}\t{e:.6g}" for p, r, e in zip(pos, rbp, effect)]
    return events, regs


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return str(v)


def _outputs(out: Path, fmt: Format) -> dict[str, Path]:
    ext = suffix(fmt)
    return {
        "expression": out / f"expression{ext}",
        "psi": out / f"psi{ext}",
        "truth_events": out / "truth_events.tsv",
        "truth_regulators": out / "truth_regulators.tsv",
        "truth_samples": out / "truth_samples.tsv",
        "generation": out / "generation.json",
        "readme": out / "README.md",
    }


def generate(
    out: str | Path,
    shape: Shape,
    settings: Settings = DEFAULT,
    *,
    seed: int = 0,
    fmt: Format = "hdf5",
    block_events: int = BLOCK_EVENTS,
    overwrite: bool = False,
    calibration: Calibration | None = None,
) -> dict[str, Any]:
    """Write the data set into folder ``out``; returns what ``generation.json`` records."""
    check(shape, settings, seed)
    need(fmt in FORMATS, "--format", fmt, f"one of {', '.join(FORMATS)}")
    need(block_events >= 1, "--block-events", block_events, "an integer >= 1")
    out = Path(out)
    files = _outputs(out, fmt)
    existing = [p for p in files.values() if p.exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"{existing[0]} already exists; expected a new folder, or pass --overwrite to replace the data set", key="--out"
        )
    out.mkdir(parents=True, exist_ok=True)
    for p in existing:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    t0 = time.perf_counter()
    data = SyntheticSplicing(shape, settings, seed, calibration)
    t_setup = time.perf_counter() - t0
    _write_expression(data, files["expression"])
    with open(files["truth_samples"], "w") as fh:
        fh.write("sample\tdepth\n" + "".join(f"{s}\t{d:.6g}\n" for s, d in zip(data.samples, data.depth)))
    block = max(1, math.ceil(block_events / TILE)) * TILE
    writer = psi_writer(fmt, files["psi"], list(data.samples), data.event_names(), block)
    tally = Tally()
    t1 = time.perf_counter()
    with open(files["truth_events"], "w") as ev_fh, open(files["truth_regulators"], "w") as reg_fh:
        ev_fh.write("\t".join(("event",) + EVENT_COLUMNS) + "\n")
        reg_fh.write("event\tregulator\tcolumn\teffect\n")
        for tiles in data.blocks(block):
            psi = np.hstack([t.psi for t in tiles]) if len(tiles) > 1 else tiles[0].psi
            writer.write(tiles[0].start, [n for t in tiles for n in t.names], psi)
            for t in tiles:
                tally.add(t)
                events, regs = _truth_rows(t, data.features.names)
                ev_fh.write("".join(r + "\n" for r in events))
                reg_fh.write("".join(r + "\n" for r in regs))
    writer.close()
    t_psi = time.perf_counter() - t1
    record = {
        "command": command_line(shape, settings, seed, fmt, out),
        "shape": asdict(shape),
        "settings": asdict(settings),
        "seed": seed,
        "format": fmt,
        "psi_layout": LAYOUT[fmt],
        "block_events": block,
        "tile_events": TILE,
        "calibration": data.cal.summary(),
        "realised": {
            **tally.figures(),
            "expression_mean_of_means": float(data.X.mean()),
            "synthetic_rbp_columns": int(sum("_syn" in str(n) for n in data.features.names)),
        },
        "seconds": {"setup": round(t_setup, 3), "psi_and_truth": round(t_psi, 3), "total": round(time.perf_counter() - t0, 3)},
        "files": {k: p.name for k, p in files.items()},
    }
    files["generation"].write_text(json.dumps(record, indent=2) + "\n")
    from regulas.sim.synthetic_splicing.readme import readme

    files["readme"].write_text(readme(record))
    return record


def _write_expression(data: SyntheticSplicing, path: Path) -> None:
    import pandas as pd

    from regulas.data.tables import write_table

    write_table(pd.DataFrame(data.X, index=pd.Index(data.samples, name="sample"), columns=pd.Index(data.features.names)), path)


def command_line(shape: Shape, settings: Settings, seed: int, fmt: str, out: Path) -> str:
    default = Settings()
    words = [
        "python -m regulas.sim.synthetic_splicing",
        f"--samples {shape.samples} --rbps {shape.rbps} --events {shape.events}",
        f"--missing-rate {settings.missing_rate}",
        f"--out {out} --seed {seed} --format {fmt}",
    ]
    for name in ("missing_pattern", "regulated_fraction", "regulators_per_event", "max_regulators", "signal"):
        value = getattr(settings, name)
        if value != getattr(default, name):
            words.append(f"--{name.replace('_', '-')} {value}")
    return " ".join(words)
