"""Start-up time of `regulas --help` and `regulas show-config` (issue 15: under 1 s, warm cache).

Each command runs as a fresh ``python -m regulas`` process: one warm-up run (the file cache),
then the median wall time of ``--runs`` runs, and one run under ``python -X importtime``
for the total import time and that of the heavy packages. Results go under ``--label`` in
``benchmarks/results/cli_start.json`` (other labels in the file are kept), e.g.::

    python benchmarks/cli_start.py                                # label "after", ~15 s
    git archive BASE regulas | tar -x -C /tmp/base                # an older tree...
    python benchmarks/cli_start.py --src /tmp/base --label before # ...measured the same way
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "cli_start.json"
HEAVY = ("dask", "distributed", "zarr", "matplotlib", "sklearn", "sqlalchemy", "scipy", "pandas")
COMMANDS: dict[str, list[str]] = {
    "help": ["--help"],
    "show-config quickstart_splicing": ["show-config", "configs/quickstart_splicing.yaml"],
    "show-config regulas experiment": ["show-config", "examples/regulas/experiment.yaml", "dataset.path_to_file=README.md"],
    "show-config regnet": ["show-config", "configs/regnet.yaml"],
}
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def run(args: list[str], env: dict[str, str], *flags: str) -> tuple[float, str]:
    """Wall seconds of one ``python -m regulas ARGS`` and its stderr; a failure stops the benchmark."""
    t0 = time.perf_counter()
    # -P: the working directory (this checkout) is not put on sys.path, so that --src counts
    proc = subprocess.run([sys.executable, "-P", *flags, "-m", "regulas", *args], cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"regulas {' '.join(args)} exited with {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return wall, proc.stderr


def import_times(stderr: str) -> dict[str, float]:
    """Seconds of all imports (top-level entries' cumulative times) and of each heavy package imported."""
    total, heavy = 0, {}
    for line in stderr.splitlines():
        m = IMPORT_LINE.match(line)
        if m is None:
            continue
        cumulative, depth, name = int(m.group(2)), len(m.group(3)) // 2, m.group(4)
        if depth == 0:
            total += cumulative
        if name in HEAVY:  # a package's own entry: its cumulative time includes its submodules
            heavy[name] = heavy.get(name, 0) + cumulative
    return {"total_s": round(total / 1e6, 3), **{f"{k}_s": round(v / 1e6, 3) for k, v in sorted(heavy.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    parser.add_argument("--label", default="after", help="the key of these results in the JSON file")
    parser.add_argument("--src", type=Path, help="a folder holding another regulas package to measure instead")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(args.src.resolve()), env.get("PYTHONPATH", "")])
    results: dict[str, object] = {}
    for name, command in COMMANDS.items():
        run(command, env)  # warm-up: the file cache
        walls = [run(command, env)[0] for _ in range(args.runs)]
        _, stderr = run(command, env, "-X", "importtime")
        results[name] = {
            "median_s": round(statistics.median(walls), 3),
            "runs_s": [round(w, 3) for w in walls],
            "imports": import_times(stderr),
        }
        print(f"{args.label:>8}  {name:<34} median {statistics.median(walls):.2f} s  imports {results[name]['imports']}")  # type: ignore[index]
    stored = json.loads(args.out.read_text()) if args.out.exists() else {}
    stored[args.label] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "commands": results,
    }
    args.out.write_text(json.dumps(stored, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
