"""``python -m regulas.sim.synthetic_splicing --samples N --rbps P --events E --out DIR``."""

from __future__ import annotations

import argparse
import sys

from regulas.core.errors import ConfigError
from regulas.sim.synthetic_splicing.generate import BLOCK_EVENTS, Shape, generate
from regulas.sim.synthetic_splicing.model import Settings
from regulas.sim.synthetic_splicing.writers import FORMATS


def parser() -> argparse.ArgumentParser:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="python -m regulas.sim.synthetic_splicing",
        description="Write a synthetic splicing data set (RBP expression, PSI, planted truth) calibrated on GSE114922.",
    )
    p.add_argument("--samples", type=int, required=True, help="N samples (TCGA shape: 10000)")
    p.add_argument("--rbps", type=int, required=True, help="P RBPs (TCGA shape: 1500)")
    p.add_argument("--events", type=int, required=True, help="E splicing events (TCGA shape: 50000)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--missing-rate", type=float, default=d.missing_rate, help="fraction of PSI values missing (default 0)")
    p.add_argument("--missing-pattern", choices=("coverage", "uniform"), default=d.missing_pattern,
                   help="coverage: by sample depth and event coverage (default); uniform: same count per event, random rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=FORMATS, default="hdf5",
                   help="hdf5 (default) or zarr: PSI samples x events; parquet or tsv.gz: PSI events x samples")
    p.add_argument("--regulated-fraction", type=float, default=d.regulated_fraction, help="share of events with planted regulators")
    p.add_argument("--regulators-per-event", type=float, default=d.regulators_per_event, help="mean regulators of a regulated event")
    p.add_argument("--max-regulators", type=int, default=d.max_regulators)
    p.add_argument("--signal", type=float, default=d.signal, help="mean share of the latent PSI variance from the regulators")
    p.add_argument("--block-events", type=int, default=BLOCK_EVENTS, help="events generated and written per block (memory)")
    p.add_argument("--overwrite", action="store_true", help="replace a data set already in --out")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings(
        missing_rate=args.missing_rate,
        missing_pattern=args.missing_pattern,
        regulated_fraction=args.regulated_fraction,
        regulators_per_event=args.regulators_per_event,
        max_regulators=args.max_regulators,
        signal=args.signal,
    )
    try:
        record = generate(
            args.out,
            Shape(args.samples, args.rbps, args.events),
            settings,
            seed=args.seed,
            fmt=args.format,
            block_events=args.block_events,
            overwrite=args.overwrite,
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    real = record["realised"]
    print(
        f"wrote {args.out}: {args.samples} samples x {args.rbps} RBPs x {args.events} events "
        f"({record['psi_layout']}), {100 * real['missing_fraction']:.2f}% missing, "
        f"{real['planted_regulators']} planted regulators, {record['seconds']['total']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
