"""TCGA/GTEx expression in the UCSC Xena layout, joined with PSI (local files only).

Files (as the Xena Toil hub distributes them, downloaded beforehand; nothing is fetched here):

- ``expression``: genes x samples, tab-separated (``.tsv.gz`` etc.), first column gene IDs
  (e.g. ``TcgaTargetGtex_rsem_gene_tpm.gz`` renamed with a ``.tsv.gz`` suffix). Only the columns
  of samples that have PSI and pass the phenotype selection are parsed.
- ``phenotype``: samples x annotations (``TcgaTargetGTEX_phenotype.txt.gz``), first column the
  sample ID, with the columns ``_study`` (TCGA, GTEX, ...), ``_sample_type`` ("Primary Tumor",
  "Normal Tissue", "Solid Tissue Normal", ...) and ``_primary_site`` (the tissue).
- PSI: either ``psi`` (a table, samples x events by default) or junction read counts
  ``inclusion`` + ``exclusion`` (:mod:`regulas.data.junctions`).
- ``gene_map`` (optional): Xena probe map (e.g. ``gencode.v23.annotation.gene.probemap``) with
  columns ``id`` and ``gene``; renames gene IDs to symbols (so an RBP list of symbols applies).

Sample selection (regulAS's ``RawLoader`` semantics), in order:

1. GTEx samples of type "Normal Tissue" and TCGA samples of type "Primary Tumor" (plus "Solid
   Tissue Normal" with ``include_adjacent_normal``); samples must have PSI and expression (inner join);
2. ``paired``: keep tissues that have both TCGA and GTEx samples;
3. ``sample_type``: "Tumor" keeps TCGA, "Normal" keeps GTEx, "Combined" keeps both;
4. ``tissues``: keep only these primary sites (regulas addition);
5. ``min_samples_per_tissue``: drop tissues with fewer samples.

meta holds ``tissue``, ``cohort`` and ``sample_type`` per sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from regulas.core.errors import ConfigError, DataError
from regulas.data.checks import few
from regulas.data.junctions import junction_psi, number_arg
from regulas.data.loaders import Loader, choice_arg, column_arg, key_of, oriented, path_arg
from regulas.data.prepare import Part, RawData
from regulas.data.tables import read_columns, read_table

PHENOTYPE_COLUMNS = {"_primary_site": "tissue", "_study": "cohort", "_sample_type": "sample_type"}
TUMOR, NORMAL, ADJACENT = "Primary Tumor", "Normal Tissue", "Solid Tissue Normal"


def select_samples(
    pheno: pd.DataFrame,
    *,
    sample_type: str,
    include_adjacent_normal: bool = False,
    paired: bool = False,
    tissues: list[str] | None = None,
    min_samples_per_tissue: int | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Apply steps 1-5 of the module doc to ``pheno`` (samples x tissue/cohort/sample_type).

    ``pheno`` must already be limited to samples with PSI and expression. Returns the kept rows
    and log lines.
    """
    log: list[str] = []
    tcga_types = [TUMOR, ADJACENT] if include_adjacent_normal else [TUMOR]
    base = ((pheno["cohort"] == "GTEX") & (pheno["sample_type"] == NORMAL)) | (
        (pheno["cohort"] == "TCGA") & pheno["sample_type"].isin(tcga_types)
    )
    kept = pheno.loc[base.to_numpy()]
    log.append(f"xena: {len(kept)} of {len(pheno)} samples are GTEx normal or TCGA {' / '.join(tcga_types).lower()}")
    if paired:
        common = set(kept.loc[kept["cohort"] == "TCGA", "tissue"]) & set(kept.loc[kept["cohort"] == "GTEX", "tissue"])
        kept = kept.loc[kept["tissue"].isin(common).to_numpy()]
        log.append(f"xena: paired tissues: {len(common)} tissues with TCGA and GTEx samples, {len(kept)} samples")
    if sample_type != "Combined":
        cohort = "TCGA" if sample_type == "Tumor" else "GTEX"
        kept = kept.loc[(kept["cohort"] == cohort).to_numpy()]
        log.append(f"xena: sample_type {sample_type}: {len(kept)} {cohort} samples")
    if tissues is not None:
        kept = kept.loc[kept["tissue"].isin(tissues).to_numpy()]
        log.append(f"xena: tissues {tissues}: {len(kept)} samples")
    if min_samples_per_tissue is not None:
        sizes = kept["tissue"].value_counts()
        small = sizes.index[sizes < min_samples_per_tissue]
        kept = kept.loc[~kept["tissue"].isin(small).to_numpy()]
        log.append(
            f"xena: dropped {len(small)} tissues with fewer than {min_samples_per_tissue} samples "
            f"({few(small, 3) or 'none'}); {kept['tissue'].nunique()} tissues, {len(kept)} samples left"
        )
    return kept, log


class XenaLoader(Loader):
    """TCGA/GTEx expression (UCSC Xena layout) joined with PSI; see the module doc.

    Model: X (n_samples, n_genes) from ``expression`` (transposed from genes x samples),
    Y (n_samples, n_events) PSI, meta (n_samples, 3) = tissue, cohort, sample_type.
    Sample alignment is the inner join of the module doc (``unaligned_samples`` does not apply).
    """

    def __init__(
        self,
        expression: str,
        phenotype: str,
        psi: str | None = None,
        inclusion: str | None = None,
        exclusion: str | None = None,
        sample_type: str = "Tumor",
        include_adjacent_normal: bool = False,
        paired: bool = False,
        tissues: list[str] | None = None,
        min_samples_per_tissue: int | None = None,
        gene_map: str | None = None,
        psi_layout: str = "samples_x_events",
        event_column: str = "event",
        min_reads: float = 10,
        inclusion_divisor: float = 2.0,
        *,
        name: str = "",
        meta: str | None = "",
        **options: Any,
    ) -> None:
        self.expression = path_arg(expression, "expression")
        self.phenotype = path_arg(phenotype, "phenotype")
        if (psi is None) == (inclusion is None or exclusion is None):
            raise ConfigError(
                f"give PSI either as psi: TABLE or as inclusion: + exclusion: junction tables "
                f"(given: psi={psi!r}, inclusion={inclusion!r}, exclusion={exclusion!r})",
                key=key_of("psi"),
            )
        self.psi = None if psi is None else path_arg(psi, "psi")
        self.inclusion = None if inclusion is None else path_arg(inclusion, "inclusion")
        self.exclusion = None if exclusion is None else path_arg(exclusion, "exclusion")
        self.sample_type = choice_arg(sample_type, "sample_type", ("Tumor", "Normal", "Combined"))
        for kwarg, flag in (("include_adjacent_normal", include_adjacent_normal), ("paired", paired)):
            if not isinstance(flag, bool):
                raise ConfigError(f"expected true or false (given: {flag!r})", key=key_of(kwarg))
        self.include_adjacent_normal = include_adjacent_normal
        self.paired = paired
        if tissues is not None and not (isinstance(tissues, list) and tissues and all(isinstance(t, str) for t in tissues)):
            raise ConfigError(f"expected a non-empty list of tissue names (given: {tissues!r})", key=key_of("tissues"))
        self.tissues = tissues
        if min_samples_per_tissue is not None and (
            isinstance(min_samples_per_tissue, bool) or not isinstance(min_samples_per_tissue, int) or min_samples_per_tissue < 1
        ):
            raise ConfigError(
                f"expected an integer >= 1 (given: {min_samples_per_tissue!r})", key=key_of("min_samples_per_tissue")
            )
        self.min_samples_per_tissue = min_samples_per_tissue
        self.gene_map = None if gene_map is None else path_arg(gene_map, "gene_map")
        self.psi_layout = choice_arg(psi_layout, "psi_layout", ("samples_x_events", "events_x_samples"))
        self.event_column = column_arg(event_column, "event_column")
        self.min_reads = number_arg(min_reads, "min_reads", allow_zero=True)
        self.inclusion_divisor = number_arg(inclusion_divisor, "inclusion_divisor", allow_zero=False)
        super().__init__(name=name, meta=meta, **options)

    def _read_psi(self) -> tuple[pd.DataFrame, str, str, list[str]]:
        if self.psi is not None:
            Y = oriented(read_table(self.psi, key=key_of("psi")), self.psi_layout)
            return Y, self.psi, key_of("psi"), []
        assert self.inclusion is not None and self.exclusion is not None
        Y, log = junction_psi(
            self.inclusion,
            self.exclusion,
            event_column=self.event_column,
            index_col=0,
            min_reads=self.min_reads,
            inclusion_divisor=self.inclusion_divisor,
        )
        return Y, self.inclusion, key_of("inclusion"), log

    def _read_phenotype(self) -> pd.DataFrame:
        pheno = read_table(self.phenotype, numeric=False, key=key_of("phenotype"))
        missing = [c for c in PHENOTYPE_COLUMNS if c not in pheno.columns]
        if missing:
            raise DataError(
                f"missing phenotype columns {missing} (found {few(pheno.columns)}); expected the Xena phenotype "
                f"layout with columns {list(PHENOTYPE_COLUMNS)}",
                key=key_of("phenotype"),
                source=self.phenotype,
            )
        return pheno[list(PHENOTYPE_COLUMNS)].rename(columns=PHENOTYPE_COLUMNS).astype(str)

    def _map_genes(self, X: pd.DataFrame, log: list[str]) -> pd.DataFrame:
        assert self.gene_map is not None
        table = read_columns(self.gene_map, key=key_of("gene_map"))
        if not {"id", "gene"} <= set(table.columns):
            raise DataError(
                f"expected the Xena probe map columns 'id' and 'gene' (found {few(table.columns)})",
                key=key_of("gene_map"),
                source=self.gene_map,
            )
        mapping = dict(zip(table["id"], table["gene"], strict=True))
        symbols = X.columns.map(lambda g: mapping.get(g, ""))
        known = np.asarray(symbols != "")
        renamed = X.loc[:, known].set_axis(symbols[known], axis=1)
        first = ~renamed.columns.duplicated()
        log.append(
            f"xena: gene_map renamed {int(known.sum())} of {X.shape[1]} genes to symbols; dropped {int((~known).sum())} "
            f"unmapped and {int((~first).sum())} repeated symbols (kept the first)"
        )
        return renamed.loc[:, first]

    def read(self) -> RawData:
        Y, y_source, y_key, log = self._read_psi()
        pheno = self._read_phenotype()
        with_psi = Y.index[Y.index.isin(pheno.index)]
        x_key = key_of("expression")
        X = read_table(self.expression, key=x_key, columns=set(with_psi)).T
        joined = with_psi[with_psi.isin(X.index)]
        log.append(
            f"xena: {len(joined)} of {len(Y)} PSI samples have a phenotype and expression "
            f"({len(Y) - len(with_psi)} lack a phenotype, {len(with_psi) - len(joined)} lack expression)"
        )
        kept, steps = select_samples(
            pheno.loc[joined],
            sample_type=self.sample_type,
            include_adjacent_normal=self.include_adjacent_normal,
            paired=self.paired,
            tissues=self.tissues,
            min_samples_per_tissue=self.min_samples_per_tissue,
        )
        log += steps
        if kept.empty:
            raise DataError(
                "no samples left after the Xena selection: " + "; ".join(log) + "; expected at least one sample",
                key=key_of("sample_type"),
                source=self.phenotype,
            )
        X = X.loc[kept.index]
        if self.gene_map is not None:
            X = self._map_genes(X, log)
        return RawData(
            X=Part(X, self.expression, x_key),
            Y=Part(Y.loc[kept.index], y_source, y_key),
            meta=Part(kept, self.phenotype, key_of("phenotype")),
            log=log,
        )
