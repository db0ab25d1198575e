"""Write per-event pickles in regulAS's dataset format from the packaged GSE114922.

regulAS's ``PickleLoader`` reads one pickled pandas DataFrame per splicing event: samples as
rows, the features (RBP expression) as columns and the event's PSI as the target column
(``objective: psi`` in the experiment file). regulAS's ETL step writes them as
``<out>/<gene>/<gene>_<setup>.pkl``; this script does the same from the data set that ships
with regulas (``regulas.datasets.load_gse114922()``; GPL-3, see
``regulas/datasets/data/gse114922/SOURCE.md``):

- features: the RNA-binding proteins of Sebestyén et al. 2016 present in the FPKM table,
  as log2(FPKM + 1), without the ones that are constant over the 40 samples;
- target ``psi``: one event's PSI; the events are the ``--events`` most variable ones;
- ``<gene>``: the event's gene (the first field of its ID, ``GENE:TYPE:chrom:...``) and
  ``<setup>``: the rest of the ID with ``:`` replaced by ``_``.

    python examples/regulas/make_pickles.py                   # 5 events into examples/regulas/data
    python examples/regulas/make_pickles.py --events 20 --out /tmp/pickles

It prints the path of every pickle it writes.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from regulas.datasets import load_gse114922, load_rbp_list

HERE = Path(__file__).resolve().parent


def event_frames(n_events: int) -> dict[str, pd.DataFrame]:
    """Event ID -> DataFrame (samples x (RBPs..., psi)) for the ``n_events`` most variable events."""
    data = load_gse114922()
    rbps = [g for g in load_rbp_list()["symbol"] if g in data.fpkm.columns]
    expression = np.log2(data.fpkm[rbps] + 1.0)
    expression = expression.loc[:, expression.var(ddof=0) > 0]
    variance = data.psi.var(ddof=0).sort_values(ascending=False, kind="stable")
    frames = {}
    for event in variance.index[:n_events]:
        frame = expression.copy()
        frame["psi"] = data.psi[event]
        frames[str(event)] = frame
    return frames


def pickle_path(out: Path, event: str) -> Path:
    gene, _, rest = event.partition(":")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", gene)
    setup = re.sub(r"[^A-Za-z0-9._-]", "_", rest)
    return out / safe / f"{safe}_{setup}.pkl"


def main(argv: Sequence[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5, help="how many events (the most variable ones); default 5")
    parser.add_argument("--out", type=Path, default=HERE / "data", help="output folder; default examples/regulas/data")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    written = []
    for event, frame in event_frames(args.events).items():
        path = pickle_path(args.out, event)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_pickle(path)
        print(path)
        written.append(path)
    return written


if __name__ == "__main__":
    main()
