"""Gene annotations: the shipped human gene table and users' own annotation files.

**Shipped table** ``gta/data/human_genes.tsv.gz`` (one row per Ensembl gene; side file ``human_genes.meta.json``
records the sources). Built from Debian's Bioconductor packages ``r-bioc-org.hs.eg.db`` and ``r-bioc-go.db``
(no R needed: their SQLite files are read with :mod:`sqlite3`) by :func:`build_annotation_table`. Columns:

=============  ===============================================================================================
gene_id        Ensembl ENSG id without version (from ``ncbi2ensembl``)
entrez         NCBI Entrez Gene id
symbol, name   official symbol and full name
gene_type      NCBI gene type with ``-`` as ``_`` (``protein_coding``, ``ncRNA``, ``pseudogene``, ...)
chrom          ``chr1`` .. ``chr22``, ``chrX``, ``chrY``, ``chrM`` (GRCh38; genes only on alt contigs are left out)
start, end     0-based half-open span over the gene's transcripts on that chromosome and strand
strand         ``+`` or ``-``
go_bp          GO biological-process term names, ``; ``-separated, at most :data:`GO_TERMS_MAX`, ranked (below)
description    one plain-text paragraph: "SYMBOL (name) is a protein-coding gene on chr17. Biological processes: ..."
=============  ===============================================================================================

**GO ranking rule** (direct ``go_bp`` annotations; evidence ``ND`` ignored). Terms are sorted by
(1) specificity band, from the number of human genes directly annotated with the term: 5-300 genes first
(informative), then fewer than 5 (rare), then more than 300 (generic, e.g. "regulation of transcription by RNA
polymerase II"); (2) best evidence tier: experimental, curator-stated or phylogenetic (EXP IDA IPI IMP IGI IEP
HTP HDA HMP HGI HEP TAS IC NAS IBA), then other computational (ISS, ISO, ...), then electronic only (IEA);
(3) fewer annotated genes; (4) shorter name; (5) name. The first :data:`GO_TERMS_MAX` are kept.

**Choices where the sources disagree.** An Entrez gene with several ENSG ids gives one row per ENSG (same
annotation). An ENSG claimed by several Entrez genes keeps one: protein-coding first, then a symbol not starting
with ``LOC``, then the smallest Entrez id. A gene placed on several main chromosomes (PAR genes) keeps the
chromosome and strand with the most transcripts (ties: chromosome order, then ``+``).

**User annotation files** (manifest key ``annotations``): tab-separated with a header holding ``gene_id`` and
``description``; extra columns (``symbol``, ``name``, ``go_bp``, ...) are kept; ``#`` lines are comments.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import shutil
import sqlite3
import subprocess
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from gta.atomic import atomic_path
from gta.errors import GtaInputError
from gta.io.genes import strip_version
from gta.resources import DATA_DIR

HUMAN_GENES_PATH = DATA_DIR / "human_genes.tsv.gz"
HUMAN_GENES_META_PATH = DATA_DIR / "human_genes.meta.json"
DEBIAN_PACKAGES = ("r-bioc-org.hs.eg.db", "r-bioc-go.db")
ORG_SQLITE = "org.Hs.eg.sqlite"
GO_SQLITE = "GO.sqlite"
COLUMNS = ("gene_id", "entrez", "symbol", "name", "gene_type", "chrom", "start", "end", "strand", "go_bp",
           "description")
GO_TERMS_MAX = 12
GO_TERMS_IN_DESCRIPTION = 6
GO_BAND = (5, 300)
MAIN_CHROMS = tuple([str(i) for i in range(1, 23)] + ["X", "Y", "M"])
EVIDENCE_TIER = {
    **dict.fromkeys(("EXP", "IDA", "IPI", "IMP", "IGI", "IEP", "HTP", "HDA", "HMP", "HGI", "HEP"), 0),
    **dict.fromkeys(("TAS", "IC", "NAS", "IBA"), 0),
    **dict.fromkeys(("ISS", "ISO", "ISA", "ISM", "IGC", "IBD", "IKR", "IRD", "RCA"), 1),
    "IEA": 2,
}
GENE_TYPES = {"protein-coding": "protein_coding", "pseudo": "pseudogene", "biological-region": "biological_region"}
TYPE_PHRASES = {
    "protein_coding": "a protein-coding gene",
    "ncRNA": "a non-coding RNA gene",
    "pseudogene": "a pseudogene",
    "snoRNA": "a small nucleolar RNA gene",
    "snRNA": "a small nuclear RNA gene",
    "scRNA": "a small cytoplasmic RNA gene",
    "rRNA": "a ribosomal RNA gene",
    "tRNA": "a transfer RNA gene",
    "biological_region": "a biological region",
}


def type_phrase(gene_type: str) -> str:
    """Human words for a gene type: ``protein_coding`` -> "a protein-coding gene"."""
    return TYPE_PHRASES.get(gene_type, "a gene" if gene_type in ("", "other", "unknown") else f"a {gene_type} gene")


def describe_gene(symbol: str, name: str, gene_type: str, chrom: str, go_terms: list[str]) -> str:
    """The one-paragraph description stored in the table."""
    head = f"{symbol} ({name})" if name and name != symbol else symbol
    text = f"{head} is {type_phrase(gene_type)} on {chrom}."
    if go_terms:
        return text + " Biological processes: " + "; ".join(go_terms[:GO_TERMS_IN_DESCRIPTION]) + "."
    return text + " It has no Gene Ontology biological-process annotation."


# ----------------------------------------------------------------------------------------------- building


def _rank_go(org: sqlite3.Connection) -> dict[int, list[str]]:
    """``_id`` -> ranked GO BP term names (see the module docstring for the rule)."""
    rows = org.execute(
        "SELECT b._id, b.go_id, b.evidence, t.term FROM go_bp b JOIN go.go_term t ON t.go_id = b.go_id "
        "WHERE b.evidence != 'ND'"
    ).fetchall()
    go = pd.DataFrame(rows, columns=["_id", "go_id", "evidence", "term"])
    go["tier"] = go["evidence"].map(EVIDENCE_TIER).fillna(1).astype(int)
    go = go.groupby(["_id", "go_id", "term"], as_index=False)["tier"].min()
    go["n_genes"] = go.groupby("go_id")["_id"].transform("size")
    lo, hi = GO_BAND
    go["band"] = 0
    go.loc[go["n_genes"] < lo, "band"] = 1
    go.loc[go["n_genes"] > hi, "band"] = 2
    go["length"] = go["term"].str.len()
    go = go.sort_values(["_id", "band", "tier", "n_genes", "length", "term"])
    return {int(k): list(v[:GO_TERMS_MAX]) for k, v in go.groupby("_id", sort=False)["term"]}


def _locations(org: sqlite3.Connection) -> pd.DataFrame:
    """``_id`` -> chrom, start, end, strand on a main chromosome (one row per gene)."""
    marks = ",".join("?" * len(MAIN_CHROMS))
    rows = org.execute(
        f"SELECT _id, seqname, start_location, end_location FROM chromosome_locations WHERE seqname IN ({marks})",
        MAIN_CHROMS,
    ).fetchall()
    loc = pd.DataFrame(rows, columns=["_id", "seqname", "s", "e"])
    loc["strand"] = loc["s"].map(lambda v: "-" if v < 0 else "+")
    loc["start"] = loc["s"].abs()
    loc["end"] = loc["e"].abs()
    grp = loc.groupby(["_id", "seqname", "strand"], as_index=False).agg(
        n=("start", "size"), start=("start", "min"), end=("end", "max")
    )
    grp["chrom_rank"] = grp["seqname"].map({c: i for i, c in enumerate(MAIN_CHROMS)})
    grp = grp.sort_values(["_id", "n", "chrom_rank", "strand"], ascending=[True, False, True, True])
    grp = grp.drop_duplicates("_id")
    grp["chrom"] = "chr" + grp["seqname"]
    return grp[["_id", "chrom", "start", "end", "strand", "chrom_rank"]]


def annotation_sources(org_sqlite: str | Path, go_sqlite: str | Path) -> dict[str, str]:
    """Source names and dates recorded in the two databases' ``metadata`` tables."""
    out: dict[str, str] = {}
    for path in (org_sqlite, go_sqlite):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            out.update({str(k): str(v) for k, v in con.execute("SELECT name, value FROM metadata")})
    keep = ("EGSOURCEDATE", "GOSOURCEDATE", "ENSOURCEDATE", "GPSOURCEDATE", "GOEGSOURCEDATE", "ORGANISM")
    return {k: out[k] for k in keep if k in out}


def build_annotation_table(org_sqlite: str | Path, go_sqlite: str | Path) -> pd.DataFrame:
    """The human gene table (columns :data:`COLUMNS`) from ``org.Hs.eg.sqlite`` and ``GO.sqlite``."""
    for p in (org_sqlite, go_sqlite):
        if not Path(p).is_file():
            raise GtaInputError("annotation database not found", path=p,
                                hint="apt-get download " + " ".join(DEBIAN_PACKAGES) + " and dpkg -x them")
    org = sqlite3.connect(f"file:{org_sqlite}?mode=ro", uri=True)
    try:
        org.execute("ATTACH DATABASE ? AS go", (f"file:{go_sqlite}?mode=ro",))
    except sqlite3.OperationalError:
        org.execute("ATTACH DATABASE ? AS go", (str(go_sqlite),))
    try:
        genes = pd.DataFrame(
            org.execute(
                "SELECT g._id, g.gene_id, i.symbol, i.gene_name, "
                "(SELECT MIN(t.gene_type) FROM genetype t WHERE t._id = g._id) "
                "FROM genes g JOIN gene_info i ON i._id = g._id"
            ).fetchall(),
            columns=["_id", "entrez", "symbol", "name", "gene_type"],
        )
        ens = pd.DataFrame(org.execute("SELECT _id, ensembl_id FROM ncbi2ensembl").fetchall(),
                           columns=["_id", "gene_id"])
        loc = _locations(org)
        go = _rank_go(org)
    finally:
        org.close()
    genes["gene_type"] = genes["gene_type"].fillna("unknown").map(lambda t: GENE_TYPES.get(t, t.replace("-", "_")))
    df = genes.merge(ens, on="_id").merge(loc, on="_id")
    df["gene_id"] = df["gene_id"].map(strip_version)
    # one Entrez gene per ENSG: protein-coding first, then a real symbol, then the smallest Entrez id
    df["_pc"] = (df["gene_type"] != "protein_coding").astype(int)
    df["_loc"] = df["symbol"].str.startswith("LOC").astype(int)
    df["entrez"] = df["entrez"].astype(int)
    df = df.sort_values(["gene_id", "_pc", "_loc", "entrez"]).drop_duplicates("gene_id")
    terms = df["_id"].map(lambda i: go.get(int(i), []))
    df["go_bp"] = terms.map("; ".join)
    df["description"] = [
        describe_gene(s, n, t, c, g)
        for s, n, t, c, g in zip(df["symbol"], df["name"], df["gene_type"], df["chrom"], terms, strict=True)
    ]
    df = df.sort_values(["chrom_rank", "start", "gene_id"]).reset_index(drop=True)
    df = df[list(COLUMNS)].astype({"start": "int64", "end": "int64", "entrez": "int64"})
    df.attrs["sources"] = annotation_sources(org_sqlite, go_sqlite)
    return df


def write_annotation_table(table: pd.DataFrame, out: str | Path, extra_meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``table`` as a gzipped TSV (byte-reproducible: gzip mtime 0) and a ``.meta.json`` beside it."""
    out = Path(out)
    with atomic_path(out) as tmp:
        # no file name and mtime 0 in the gzip header: the same table gives the same bytes
        with tmp.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(table.to_csv(sep="\t", index=False, lineterminator="\n").encode())
        tmp.chmod(0o644)  # a shipped data file, readable by all (mkstemp creates 0600)
    meta = {
        "sources": dict(table.attrs.get("sources", {})),
        "debian_packages": list(DEBIAN_PACKAGES),
        "genome_build": "GRCh38",
        "rows": len(table),
        "protein_coding": int((table["gene_type"] == "protein_coding").sum()),
        "with_go_bp": int((table["go_bp"] != "").sum()),
        "go_rule": f"band by genes per term ({GO_BAND[0]}-{GO_BAND[1]} first, then rarer, then more generic), "
        f"then evidence tier, then fewer genes, shorter name; at most {GO_TERMS_MAX}",
        **dict(extra_meta or {}),
    }
    with atomic_path(_meta_path(out)) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        tmp.chmod(0o644)
    return out


def _meta_path(out: Path) -> Path:
    name = out.name.removesuffix(".gz").removesuffix(".tsv")
    return out.with_name(name + ".meta.json")


def find_sqlite(folder: str | Path) -> tuple[Path, Path]:
    """Find ``org.Hs.eg.sqlite`` and ``GO.sqlite`` anywhere under ``folder`` (e.g. a ``dpkg -x`` root)."""
    folder = Path(folder)
    found = []
    for name in (ORG_SQLITE, GO_SQLITE):
        hits = sorted(folder.rglob(name)) if folder.is_dir() else []
        if not hits:
            raise GtaInputError(f"no {name} under this folder", path=folder,
                                hint="unpack the Debian packages with dpkg -x " + " / ".join(DEBIAN_PACKAGES))
        found.append(hits[0])
    return found[0], found[1]


def download_debs(folder: str | Path) -> list[Path]:
    """``apt-get download`` the two Debian packages into ``folder`` (needs apt and a package mirror)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("apt-get") is None:
        raise GtaInputError("apt-get is not available to download the annotation packages",
                            hint="download " + " and ".join(DEBIAN_PACKAGES) + " .deb files and pass --debs-dir")
    proc = subprocess.run(["apt-get", "download", *DEBIAN_PACKAGES], cwd=folder, capture_output=True, text=True)
    if proc.returncode != 0:
        msg = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit code {proc.returncode}"
        raise GtaInputError(f"apt-get download failed: {msg}", hint="run apt-get update first, or pass --debs-dir")
    return sorted(folder.glob("*.deb"))


def unpack_debs(debs_dir: str | Path, dest: str | Path) -> Path:
    """``dpkg-deb -x`` every annotation ``.deb`` in ``debs_dir`` into ``dest``; returns ``dest``."""
    debs = [p for p in sorted(Path(debs_dir).glob("*.deb")) if p.name.startswith(DEBIAN_PACKAGES)]
    if len(debs) < len(DEBIAN_PACKAGES):
        raise GtaInputError("the annotation .deb files are missing from this folder", path=debs_dir,
                            hint="apt-get download " + " ".join(DEBIAN_PACKAGES))
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    return Path(dest)


def build_annotations(
    sqlite_dir: str | Path | None = None, out: str | Path = "human_genes.tsv.gz", debs_dir: str | Path | None = None
) -> Path:
    """Build the human gene table and write it to ``out`` (+ ``.meta.json``); returns ``out``.

    Give ``sqlite_dir`` (a folder holding both SQLite files, searched recursively) or ``debs_dir`` (the two
    ``.deb`` files); with neither, the packages are downloaded with ``apt-get download`` into a temp folder.
    """
    with tempfile.TemporaryDirectory(prefix="gta-annotations-") as tmp:
        debs: list[str] = []
        if sqlite_dir is None:
            if debs_dir is None:
                debs_dir = Path(tmp) / "debs"
                download_debs(debs_dir)
            debs = [p.name for p in sorted(Path(debs_dir).glob("*.deb"))]
            sqlite_dir = unpack_debs(debs_dir, Path(tmp) / "root")
        org, go = find_sqlite(sqlite_dir)
        table = build_annotation_table(org, go)
    extra = {"debian_files": debs} if debs else {}
    write_annotation_table(table, out, extra_meta=extra)
    return Path(out)


# ------------------------------------------------------------------------------------------------ reading


@functools.lru_cache(maxsize=4)
def load_human_genes(path: str | Path | None = None) -> pd.DataFrame:
    """The shipped human gene table (cached; do not modify the returned frame in place)."""
    path = Path(path) if path is not None else HUMAN_GENES_PATH
    if not path.is_file():
        raise GtaInputError("the human gene annotation table is missing", path=path,
                            hint="rebuild it with python scripts/build_annotations.py")
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise GtaInputError(f"annotation table lacks columns {missing}", path=path,
                            hint="rebuild it with python scripts/build_annotations.py")
    return df.astype({"entrez": "int64", "start": "int64", "end": "int64"})


def read_annotation_table(path: str | Path) -> dict[str, dict[str, str]]:
    """Read a user annotation TSV: gene_id (version stripped) -> {column: value} for every column."""
    path = Path(path)
    if not path.is_file():
        raise GtaInputError("annotation file not found", path=path, hint="check the 'annotations' path in the manifest")
    rows: dict[str, dict[str, str]] = {}
    seen_at: dict[str, int] = {}
    header: list[str] | None = None
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for lineno, fields in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if not fields or not "".join(fields).strip() or fields[0].startswith("#"):
                continue
            fields = [f.strip() for f in fields]
            if header is None:
                header = fields
                missing = [c for c in ("gene_id", "description") if c not in header]
                if missing:
                    raise GtaInputError(f"header lacks column(s) {', '.join(missing)}; found {header}", path=path,
                                        line=lineno, hint="the first line must name tab-separated columns "
                                        "gene_id and description")
                if len(set(header)) != len(header):
                    raise GtaInputError("header repeats a column name", path=path, line=lineno)
                continue
            if len(fields) != len(header):
                raise GtaInputError(f"expected {len(header)} tab-separated fields, found {len(fields)}", path=path,
                                    line=lineno, hint="separate columns with tabs, not spaces")
            row = dict(zip(header, fields, strict=True))
            gid = strip_version(row["gene_id"])
            if not gid:
                raise GtaInputError("empty gene_id", path=path, line=lineno)
            if not row["description"]:
                raise GtaInputError(f"empty description for {gid}", path=path, line=lineno,
                                    hint="write a description or remove the row")
            if gid in rows:
                raise GtaInputError(f"duplicate gene_id {gid} (first seen on line {seen_at[gid]})", path=path,
                                    line=lineno, hint="keep one row per gene")
            row["gene_id"] = gid
            rows[gid] = row
            seen_at[gid] = lineno
    if header is None:
        raise GtaInputError("annotation file is empty", path=path, hint="add a header line: gene_id<TAB>description")
    return rows


def read_annotations(path: str | Path) -> dict[str, str]:
    """Read a user annotation TSV: gene_id (version stripped) -> description."""
    return {gid: row["description"] for gid, row in read_annotation_table(path).items()}


_INDEX: dict[int, tuple[weakref.ref, dict[str, int], dict[str, int]]] = {}


def _index(table: pd.DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    hit = _INDEX.get(id(table))
    if hit is not None and hit[0]() is table:
        return hit[1], hit[2]
    by_id: dict[str, int] = {}
    by_symbol: dict[str, int] = {}
    symbols = table["symbol"] if "symbol" in table.columns else [""] * len(table)
    for pos, (gid, sym) in enumerate(zip(table["gene_id"], symbols, strict=True)):
        by_id.setdefault(str(gid), pos)
        if sym:
            by_symbol.setdefault(str(sym).upper(), pos)
    _INDEX[id(table)] = (weakref.ref(table), by_id, by_symbol)
    return by_id, by_symbol


def annotation_for(
    gene_id: str | None,
    symbol: str | None = None,
    table: pd.DataFrame | Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The annotation row for a gene, found by Ensembl id (version ignored) or else by symbol (any case).

    ``table`` is a DataFrame like the shipped one (default: :func:`load_human_genes`) or a mapping
    gene_id -> row as returned by :func:`read_annotation_table`. Returns a plain dict, or ``None``.
    """
    if table is None:
        table = load_human_genes()
    gid = strip_version(gene_id) if gene_id else ""
    if isinstance(table, pd.DataFrame):
        by_id, by_symbol = _index(table)
        pos = by_id.get(gid)
        if pos is None and symbol:
            pos = by_symbol.get(symbol.upper())
        if pos is None:
            return None
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in table.iloc[pos].to_dict().items()}
    if gid in table:
        return dict(table[gid])
    if symbol:
        want = symbol.upper()
        for row in table.values():
            if str(row.get("symbol", "")).upper() == want:
                return dict(row)
    return None
