"""What every figure of every report shares: a headless backend and one way to save."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
