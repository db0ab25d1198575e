"""Small public data sets shipped with regulas, as scikit-learn ships its small ones.

Each lives in ``regulas/datasets/data/<name>/`` with its ``SOURCE.md`` (origin, commit,
checksums, what was changed) and its own ``LICENSE`` (the code of regulas is MIT; the
GSE114922 tables come from a GPL-3 package and the Shalek 2013 tables from a GPL-2
repository, the RBP list and the motif scores from MIT-licensed packages):

- ``gse114922``: PSI (40 samples x 9,990 events) and FPKM (40 x 6,275 genes) of MDS
  patients, SF3B1-mutant vs wild-type (:func:`load_gse114922`);
- ``rbp``: the RNA-binding proteins of Sebestyen et al. 2016 (:func:`load_rbp_list`);
- ``motifs``: 400 genomic regions x 623 GimmeMotifs motif scores (:func:`load_motif_scores`);
- ``shalek2013``: single-cell splicing (PSI with missing values) and expression of mouse
  dendritic cells (:func:`load_shalek2013`).

Configs name a file without a relative path as ``${dataset:gse114922/psi.tsv.gz}``
(an OmegaConf resolver registered by :mod:`regulas.study`); Python code uses
:func:`path` or the loaders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from regulas.core.errors import ConfigError

# pandas only where a table is read: the ``${dataset:...}`` resolver (:func:`path`) runs
# whenever a config is loaded, e.g. by ``regulas show-config``
if TYPE_CHECKING:
    import pandas as pd

DATA = Path(__file__).with_name("data")


def names() -> list[str]:
    """The shipped data sets (folder names)."""
    return sorted(p.name for p in DATA.iterdir() if p.is_dir())


def path(name: str) -> str:
    """Absolute path of a shipped file or data set folder, e.g. ``path("gse114922/psi.tsv.gz")``."""
    found = (DATA / name).resolve()
    inside = found == DATA.resolve() or DATA.resolve() in found.parents
    if not inside or not found.exists():
        files = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file() and p.name not in ("LICENSE",))
        raise ConfigError(f"no shipped data file {name!r}; the files are: {', '.join(files)}", key="dataset")
    return str(found)


def source(name: str) -> str:
    """The ``SOURCE.md`` of data set ``name``: where it comes from and its licence."""
    return (DATA / name / "SOURCE.md").read_text()


@dataclass(frozen=True)
class GSE114922:
    """PSI and expression of 40 MDS patients (rows: GEO sample IDs, same order in every table)."""

    psi: pd.DataFrame  # samples x events, PSI in [0, 1], no missing value
    fpkm: pd.DataFrame  # samples x genes, FPKM (not log-transformed)
    samples: pd.DataFrame  # sample -> condition (MUT / WT: SF3B1 mutation)


def load_gse114922() -> GSE114922:
    """GSE114922 (Pellagatti et al. 2018, via the ASpediaFI package; GPL-3): see ``source("gse114922")``."""
    import pandas as pd

    folder = DATA / "gse114922"
    return GSE114922(
        psi=pd.read_csv(folder / "psi.tsv.gz", sep="\t", index_col=0),
        fpkm=pd.read_csv(folder / "expression_fpkm.tsv.gz", sep="\t", index_col=0),
        samples=pd.read_csv(folder / "samples.tsv", sep="\t", index_col=0),
    )


def load_rbp_list() -> pd.DataFrame:
    """RNA-binding proteins of Sebestyen et al. 2016 (via psichomics; MIT): ``symbol``, ``is_splicing_factor``."""
    import pandas as pd

    return pd.read_csv(DATA / "rbp" / "sebestyen2016_rbps.tsv", sep="\t")


@dataclass(frozen=True)
class Motifs:
    """GimmeMotifs test data (MIT): motif scores of 400 regions and their cluster labels."""

    scores: pd.DataFrame  # regions x motifs (log-odds scores)
    clusters: pd.Series  # region -> cluster (1..4)


def load_motif_scores() -> Motifs:
    import pandas as pd

    folder = DATA / "motifs"
    scores = pd.read_csv(folder / "regions400_motif_scores.tsv.gz", sep="\t", index_col=0)
    clusters = pd.read_csv(folder / "regions400_clusters.tsv", sep="\t", index_col=0).iloc[:, 0]
    return Motifs(scores=scores, clusters=clusters)


@dataclass(frozen=True)
class Shalek2013:
    """Shalek et al. 2013 single cells (flotilla data package of YeoLab; GPL-2)."""

    splicing: pd.DataFrame  # cells x events, PSI with missing values
    expression: pd.DataFrame  # cells x genes
    metadata: pd.DataFrame  # cell -> phenotype, pooled, outlier, maturity
    splicing_feature: pd.DataFrame  # event -> gene_name, gene_category


def load_shalek2013() -> Shalek2013:
    import pandas as pd

    folder = DATA / "shalek2013"
    return Shalek2013(
        splicing=pd.read_csv(folder / "splicing.csv.gz", index_col=0),
        expression=pd.read_csv(folder / "expression.csv.gz", index_col=0),
        metadata=pd.read_csv(folder / "metadata.csv", index_col=0),
        splicing_feature=pd.read_csv(folder / "splicing_feature.csv", index_col=0),
    )


__all__ = [
    "GSE114922",
    "Motifs",
    "Shalek2013",
    "load_gse114922",
    "load_motif_scores",
    "load_rbp_list",
    "load_shalek2013",
    "names",
    "path",
    "source",
]
