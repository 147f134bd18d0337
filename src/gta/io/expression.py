"""Expression matrices: genes x samples, read into a float64 DataFrame (index gene_id without version).

Layouts:
* **Geuvadis** (``TargetID Gene_Symbol Chr Coord <samples...>``, tab-separated, e.g.
  ``GD462.GeneQuantRPKM.50FN.samplename.resk10.txt``).
* **GCT** (``#1.2`` header, ``Name Description <samples...>``; GTEx).
* **Plain** TSV/CSV (gzipped too): the first column holds gene ids, the others samples (a header one field
  short, as R's ``write.table`` writes it, is read as unnamed gene ids); metadata columns named
  ``symbol``/``gene_symbol``/``gene_name``/``description``/``chr``/``chrom``/``coord``/``start``/``end``/``strand``/
  ``length``/``gene_type`` are recognised and left out of the values.
* **Parquet**: the same table, gene ids in the first column (or a named index).

Missing values (empty, ``NA``, ``NaN``) are allowed and kept as NaN ("not measured"): training masks them, the
transforms ignore them. A gene with no value at all is dropped and counted in ``skipped``. Any other non-numeric
value, an infinite value, a repeated gene id or sample id is a ``GtaInputError`` with file, line and column.
Transforms (per gene = per row): ``log1p`` (values must be >= 0), ``standardize`` (mean 0, population sd 1 across
samples; a constant gene becomes all zeros), ``log1p+standardize``.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gta.errors import GtaInputError
from gta.io.genes import iter_lines, split_row, strip_version
from gta.io.types import Gene

TRANSFORMS = ("none", "log1p", "standardize", "log1p+standardize")
META_COLUMNS = frozenset({"symbol", "gene_symbol", "gene_name", "description", "chr", "chrom", "coord", "start",
                          "end", "strand", "length", "gene_type", "gene_biotype", "name"})
SKIP_ALL_MISSING = "all values missing"
MISSING = ("", "NA", "NaN", "nan", "N/A", "NULL", "null", "None", ".")
_ENSEMBL_GENE = r"^ENS[A-Z]*G\d+"


@dataclass
class ExpressionTable:
    """``values`` [genes x samples] float64 (index ``gene_id``), gene symbols when the file had them."""

    values: pd.DataFrame
    symbols: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    path: Path | None = None
    transform: str = "none"

    @property
    def samples(self) -> list[str]:
        return [str(c) for c in self.values.columns]

    @property
    def gene_ids(self) -> list[str]:
        return [str(i) for i in self.values.index]

    def for_genes(self, genes: list[Gene]) -> pd.DataFrame:
        """Rows for ``genes`` (index = their gene_id, in their order), matched by id, else by symbol (any case);
        genes without expression are left out."""
        ids, by_symbol = self._lookup()
        rows, index = [], []
        for g in genes:
            hit = g.gene_id if g.gene_id in ids else by_symbol.get(g.symbol.upper())
            if hit is not None:
                rows.append(hit)
                index.append(g.gene_id)
        out = self.values.loc[rows]
        out.index = pd.Index(index, name="gene_id")
        return out

    def _lookup(self) -> tuple[set[str], dict[str, str]]:
        by_symbol: dict[str, str] = {}
        for gid, sym in self.symbols.items():
            by_symbol.setdefault(sym.upper(), gid)
        return set(self.values.index), by_symbol


def read_expression(path: str | Path, transform: str = "none") -> ExpressionTable:
    """Read a genes x samples matrix (Geuvadis, GCT, plain TSV/CSV, parquet) and apply ``transform``."""
    path = Path(path)
    if transform not in TRANSFORMS:
        raise GtaInputError(f"unknown expression transform {transform!r}", path, hint=", ".join(TRANSFORMS))
    if not path.is_file():
        raise GtaInputError("expression file not found" if not path.exists() else "expected a file", path)
    if path.suffix.lower() in (".parquet", ".pq"):
        raw, header_lines = _read_parquet(path), None
    else:
        raw, header_lines = _read_text(path)
    table = _to_table(raw, path, header_lines)
    table.values = apply_transform(table.values, transform, path)
    table.transform = transform
    return table


def _read_text(path: Path) -> tuple[pd.DataFrame, int]:
    """The table as strings, and the 1-based line number of its header."""
    lines = []
    header_line = 0
    gct = False
    for lineno, text in iter_lines(path):
        if not lines:
            if lineno == 1 and text.startswith("#1.2"):
                gct = True
                continue
            if gct and lineno == 2 or not text.strip() or (text.startswith("#") and not gct):
                continue
            header_line = lineno
        lines.append(text)
    if not lines:
        raise GtaInputError("expression file is empty", path, hint="a header line, then one row per gene")
    sep = "\t" if "\t" in lines[0] or not path.name.lower().removesuffix(".gz").endswith(".csv") else ","
    header = split_row(lines[0], sep, path, header_line)
    if len(lines) > 1 and _width(lines[1], sep, path, header_line + 1) == len(header) + 1:
        header = ["gene_id", *header]  # R's write.table: the header has no name for the row-name column
        lines[0] = sep.join(header)
    width = len(header)
    for i, text in enumerate(lines[1:], start=1):
        n = _width(text, sep, path, header_line + i)
        if n != width and text.strip():
            raise GtaInputError(f"expected {width} fields like the header, found {n}", path, header_line + i)
    dupes = [c for c, k in Counter(h.strip() for h in header).items() if k > 1]
    if dupes:
        raise GtaInputError(f"repeated column name(s) {dupes[:5]}", path, header_line,
                            hint="each sample appears once")
    header = [h.strip() for h in header]
    _, _, meta = _layout(header)
    na = {c: list(MISSING) for c in header if c not in meta}
    try:
        df = pd.read_csv(io.StringIO("\n".join(lines)), sep=sep, names=header, header=0, skip_blank_lines=True,
                         dtype={c: str for c in meta}, keep_default_na=False, na_values=na)
    except (pd.errors.ParserError, ValueError) as e:
        raise GtaInputError(f"cannot parse table: {e}", path) from None
    return df, header_line


def _width(text: str, sep: str, path: Path, lineno: int) -> int:
    return text.count(sep) + 1 if '"' not in text else len(split_row(text, sep, path, lineno))


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise GtaInputError(f"cannot read parquet: {' '.join(str(e).split())[:200]}", path) from None
    if not isinstance(df.index, pd.RangeIndex) or df.index.name:
        df = df.reset_index()
    df.columns = [str(c).strip() for c in df.columns]
    if len(set(df.columns)) != len(df.columns):
        raise GtaInputError("repeated column names", path)
    return df


def _to_table(df: pd.DataFrame, path: Path, header_line: int | None) -> ExpressionTable:
    if df.shape[1] < 2:
        raise GtaInputError("expression table needs a gene id column and at least one sample column", path,
                            header_line, hint="tab-separated: gene_id, then one column per sample")
    cols = list(df.columns)
    id_col, symbol_col, meta = _layout(cols)
    samples = [c for c in cols if c not in meta]
    if not samples:
        raise GtaInputError("no sample columns", path, header_line)
    ids = [strip_version(str(v)) for v in df[id_col]]
    line_of = (lambda i: header_line + 1 + i) if header_line is not None else (lambda i: None)
    seen: dict[str, int] = {}
    for i, gid in enumerate(ids):
        if not gid:
            raise GtaInputError(f"empty gene id in column {id_col!r}", path, line_of(i))
        if gid in seen:
            raise GtaInputError(f"duplicate gene id {gid} (first on row {seen[gid] + 1})", path, line_of(i),
                                hint="one row per gene")
        seen[gid] = i
    values = np.empty((len(df), len(samples)), dtype=np.float64)
    for j, col in enumerate(samples):
        values[:, j] = _numeric(df[col], path, col, line_of)
    frame = pd.DataFrame(values, index=pd.Index(ids, name="gene_id"), columns=pd.Index(samples, name="sample"))
    _check_orientation(frame, path)
    empty = frame.isna().all(axis=1)
    skipped = {SKIP_ALL_MISSING: int(empty.sum())} if empty.any() else {}
    frame = frame.loc[~empty]
    symbols = {}
    if symbol_col is not None:
        symbols = {g: str(s) for g, s, keep in zip(ids, df[symbol_col], ~empty.to_numpy(), strict=True)
                   if keep and str(s) not in ("", "nan", "None")}
    return ExpressionTable(frame, symbols, skipped, path)


def _layout(cols: list[str]) -> tuple[str, str | None, set[str]]:
    """(gene id column, symbol column or None, columns that are not samples) from the header."""
    lower = [c.lower() for c in cols]
    if lower[:2] == ["targetid", "gene_symbol"]:  # Geuvadis
        return cols[0], cols[1], set(cols[:4]) & {cols[0], cols[1], "Chr", "Coord"}
    if lower[:2] == ["name", "description"]:  # GCT
        return cols[0], None, {cols[0], cols[1]}
    meta = {cols[0]} | {c for c in cols[1:] if c.lower() in META_COLUMNS}
    symbol_col = next((c for c in cols[1:] if c.lower() in ("symbol", "gene_symbol", "gene_name")), None)
    return cols[0], symbol_col, meta


def _numeric(col: pd.Series, path: Path, name: str, line_of) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        out = col.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = col.astype(str).str.strip()
        missing = text.isin(MISSING) | col.isna()
        out = pd.to_numeric(text.where(~missing, "nan"), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(out) & ~missing.to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise GtaInputError(f"value {text.iloc[i]!r} in column {name!r} is not a number", path, line_of(i),
                                hint="expression values are numbers; write NA for a missing value")
    if np.isinf(out).any():
        i = int(np.argmax(np.isinf(out)))
        raise GtaInputError(f"infinite value in column {name!r}", path, line_of(i))
    return out


def _check_orientation(frame: pd.DataFrame, path: Path) -> None:
    cols_like_genes = pd.Index(frame.columns.astype(str)).str.match(_ENSEMBL_GENE).mean()
    rows_like_genes = pd.Index(frame.index.astype(str)).str.match(_ENSEMBL_GENE).mean() if len(frame) else 0.0
    if cols_like_genes > 0.5 and rows_like_genes < 0.5:
        raise GtaInputError("the columns look like gene ids: is the matrix samples x genes?", path,
                            hint="transpose it: one row per gene, one column per sample")


def apply_transform(values: pd.DataFrame, transform: str, path: Path | None = None) -> pd.DataFrame:
    """Apply ``none``/``log1p``/``standardize``/``log1p+standardize`` per gene (row); NaN stays NaN."""
    out = values.astype(np.float64, copy=True)
    if transform in ("log1p", "log1p+standardize"):
        arr = out.to_numpy()
        if np.nanmin(arr, initial=0.0) < 0:
            gene, sample = np.argwhere(arr < 0)[0]
            raise GtaInputError(
                f"log1p needs values >= 0; {out.index[gene]} / {out.columns[sample]} is {arr[gene, sample]:g}", path,
                hint="the matrix looks already transformed: use expression_transform: none or standardize")
        out = np.log1p(out)
    if transform in ("standardize", "log1p+standardize"):
        mean = out.mean(axis=1, skipna=True)
        sd = out.std(axis=1, ddof=0, skipna=True)
        out = out.sub(mean, axis=0).div(sd.where(sd > 0, 1.0), axis=0)
    return out


def match_report(expression: ExpressionTable, genes: list[Gene]) -> dict:
    """How the genes of a gene table meet the rows of an expression matrix (by id, else by symbol)."""
    ids, by_symbol = expression._lookup()
    by_id = sum(g.gene_id in ids for g in genes)
    matched_rows = {g.gene_id for g in genes if g.gene_id in ids}
    by_sym = 0
    for g in genes:
        if g.gene_id not in ids:
            hit = by_symbol.get(g.symbol.upper())
            if hit is not None and hit not in matched_rows:
                by_sym += 1
                matched_rows.add(hit)
    unmatched_genes = [g.gene_id for g in genes if g.gene_id not in ids and g.symbol.upper() not in by_symbol]
    unmatched_rows = [r for r in expression.values.index if r not in matched_rows]
    return {
        "genes": len(genes),
        "expression_genes": int(expression.values.shape[0]),
        "samples": int(expression.values.shape[1]),
        "matched": by_id + by_sym,
        "matched_by_id": by_id,
        "matched_by_symbol": by_sym,
        "genes_without_expression": len(unmatched_genes),
        "expression_without_gene": len(unmatched_rows),
        "examples_genes_without_expression": unmatched_genes[:5],
        "examples_expression_without_gene": [str(r) for r in unmatched_rows[:5]],
        "missing_values": int(expression.values.isna().to_numpy().sum()),
    }
