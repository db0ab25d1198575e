"""What the splicing benchmarks share: the result header and writing the result."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def header(name: str, quick: bool, study: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": name,
        "quick": quick,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "blas_threads": 1,
        "study": study,
    }


def write_result(result: dict[str, Any], out: Path | None) -> None:
    """Write ``results/<name>[.quick].json`` (or ``out``) and print the result as one JSON line."""
    quick = ".quick" if result["quick"] else ""
    path = out or RESULTS / f"{result['benchmark']}{quick}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
