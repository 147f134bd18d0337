"""Human gene table (shipped and built from tiny SQLite fixtures) and user annotation files."""

from __future__ import annotations

import gzip
import json
import os
import re
import runpy
import sqlite3
import sys
from pathlib import Path

import pandas as pd
import pytest

from gta.errors import GtaInputError
from gta.io.annotations import (
    COLUMNS,
    GO_TERMS_MAX,
    HUMAN_GENES_META_PATH,
    annotation_for,
    build_annotation_table,
    build_annotations,
    find_sqlite,
    load_human_genes,
    read_annotation_table,
    read_annotations,
    strip_version,
    write_annotation_table,
)

REPO = Path(__file__).resolve().parents[1]
MAIN = {f"chr{c}" for c in [*map(str, range(1, 23)), "X", "Y", "M"]}


# ------------------------------------------------------------------------------------------ shipped table


@pytest.fixture(scope="module")
def human() -> pd.DataFrame:
    return load_human_genes()


def test_shipped_table_shape(human: pd.DataFrame) -> None:
    assert list(human.columns) == list(COLUMNS)
    pc = human[human["gene_type"] == "protein_coding"]
    assert len(pc) >= 19_000
    assert (pc["description"].str.len() > 20).all()
    assert (human["description"].str.strip() != "").all()
    assert human["gene_id"].is_unique
    assert human["gene_id"].str.fullmatch(r"ENSG\d{11}").all()
    assert set(human["chrom"]) <= MAIN
    assert (human["start"] < human["end"]).all() and (human["start"] >= 0).all()
    assert set(human["strand"]) == {"+", "-"}
    n_terms = human["go_bp"].map(lambda s: len(s.split("; ")) if s else 0)
    assert n_terms.max() == GO_TERMS_MAX
    assert (pc["go_bp"] != "").mean() > 0.8
    assert load_human_genes() is human  # cached


@pytest.mark.parametrize(
    ("symbol", "gene_id", "chrom", "strand", "go_word"),
    [
        ("SPI1", "ENSG00000066336", "chr11", "-", "differentiation"),
        ("CD19", "ENSG00000177455", "chr16", "+", "B cell"),
        ("GAPDH", "ENSG00000111640", "chr12", "+", "glycolytic process"),
        ("ACTB", "ENSG00000075624", "chr7", "-", "actin"),
    ],
)
def test_known_genes(human: pd.DataFrame, symbol: str, gene_id: str, chrom: str, strand: str, go_word: str) -> None:
    row = annotation_for(gene_id + ".12", None, human)
    assert row is not None and row["symbol"] == symbol
    assert (row["chrom"], row["strand"], row["gene_type"]) == (chrom, strand, "protein_coding")
    assert go_word in row["go_bp"]
    assert row["description"].startswith(f"{symbol} ({row['name']}) is a protein-coding gene on {chrom}. "
                                         "Biological processes: ")
    assert annotation_for(None, symbol.lower(), human)["gene_id"] == gene_id


def test_actb_coordinates_are_zero_based_half_open(human: pd.DataFrame) -> None:
    # NCBI/UCSC: ACTB at chr7:5,527,148-5,530,601 (1-based, inclusive) in GRCh38
    row = annotation_for("ENSG00000075624", None, human)
    assert (row["start"], row["end"]) == (5_527_147, 5_530_601)


def test_gene_without_go_says_so(human: pd.DataFrame) -> None:
    row = human[human["go_bp"] == ""].iloc[0]
    assert "no Gene Ontology biological-process annotation" in row["description"]


def test_shipped_meta_records_sources() -> None:
    meta = json.loads(HUMAN_GENES_META_PATH.read_text())
    assert meta["sources"]["EGSOURCEDATE"] == "2022-Sep12"
    assert meta["sources"]["GOSOURCEDATE"] == "2022-07-01"
    assert meta["sources"]["ENSOURCEDATE"] == "2022-Jun28"
    assert meta["protein_coding"] >= 19_000


def test_annotation_for_misses_and_mappings(human: pd.DataFrame) -> None:
    assert annotation_for("ENSG99999999999", "NOT_A_GENE", human) is None
    table = {"G1": {"gene_id": "G1", "symbol": "Abc", "description": "x"}}
    assert annotation_for("G1", None, table)["description"] == "x"
    assert annotation_for("other", "ABC", table)["gene_id"] == "G1"
    assert annotation_for("other", None, table) is None


def test_strip_version() -> None:
    assert strip_version("ENSG00000141510.17") == "ENSG00000141510"
    assert strip_version("ENSG00000182378.14_PAR_Y") == "ENSG00000182378_PAR_Y"
    assert strip_version("ENSG00000141510") == "ENSG00000141510"
    assert strip_version("gene_1") == "gene_1"


# --------------------------------------------------------------------------- building from tiny SQLite files


def _make_sqlite(folder: Path) -> tuple[Path, Path]:
    """Tiny org.Hs.eg / GO databases with the real schema's tables and the cases the builder must handle."""
    org_path, go_path = folder / "org.Hs.eg.sqlite", folder / "GO.sqlite"
    go = sqlite3.connect(go_path)
    go.executescript(
        "CREATE TABLE metadata (name TEXT, value TEXT);"
        "CREATE TABLE go_term (_id INTEGER PRIMARY KEY, go_id TEXT, term TEXT, ontology TEXT, definition TEXT);"
    )
    go.execute("INSERT INTO metadata VALUES ('GOSOURCEDATE', '2099-01-01')")
    terms = {"GO:1": "generic process", "GO:2": "informative process", "GO:3": "rare process",
             "GO:4": "electronic process", "GO:5": "biological_process", "GO:6": "also informative"}
    go.executemany("INSERT INTO go_term (go_id, term, ontology) VALUES (?, ?, 'BP')", terms.items())
    go.commit()
    go.close()
    org = sqlite3.connect(org_path)
    org.executescript(
        "CREATE TABLE metadata (name TEXT, value TEXT);"
        "CREATE TABLE genes (_id INTEGER PRIMARY KEY, gene_id TEXT);"
        "CREATE TABLE gene_info (_id INTEGER, gene_name TEXT, symbol TEXT);"
        "CREATE TABLE genetype (_id INTEGER, gene_type TEXT);"
        "CREATE TABLE ncbi2ensembl (_id INTEGER, ensembl_id TEXT);"
        "CREATE TABLE chromosome_locations (_id INTEGER, seqname TEXT, start_location INTEGER, end_location INTEGER);"
        "CREATE TABLE go_bp (_id INTEGER, go_id TEXT, evidence TEXT);"
    )
    org.executemany("INSERT INTO metadata VALUES (?, ?)",
                    [("EGSOURCEDATE", "2099-Jan01"), ("ENSOURCEDATE", "2099-Jan02")])
    genes = [  # _id, entrez, symbol, name, type, ensembl
        (1, "101", "MINUS", "minus strand gene", "protein-coding", "ENSG00000000001"),
        (2, "102", "PLUS", "plus strand gene", "ncRNA", "ENSG00000000002"),
        (3, "103", "ALTONLY", "on an alt contig only", "protein-coding", "ENSG00000000003"),
        (4, "104", "PAR", "pseudoautosomal gene", "protein-coding", "ENSG00000000004"),
        (5, "105", "LOC105", "claims a taken ENSG", "ncRNA", "ENSG00000000001"),
        (6, "106", "NOENS", "no Ensembl id", "protein-coding", None),
        (7, "107", "TWOENS", "two Ensembl ids", "pseudo", "ENSG00000000007"),
    ]
    for _id, entrez, sym, name, gtype, ens in genes:
        org.execute("INSERT INTO genes VALUES (?, ?)", (_id, entrez))
        org.execute("INSERT INTO gene_info VALUES (?, ?, ?)", (_id, name, sym))
        org.execute("INSERT INTO genetype VALUES (?, ?)", (_id, gtype))
        if ens:
            org.execute("INSERT INTO ncbi2ensembl VALUES (?, ?)", (_id, ens))
    org.execute("INSERT INTO ncbi2ensembl VALUES (7, 'ENSG00000000008')")
    org.executemany("INSERT INTO chromosome_locations VALUES (?, ?, ?, ?)", [
        (1, "17", -1000, -5000), (1, "17", -1200, -5500), (1, "17_KI270857v1_alt", -1, -9),
        (2, "1", 100, 900), (3, "6_GL000251v2_alt", 10, 20),
        (4, "X", 50, 60), (4, "Y", 70, 80), (5, "2", 5, 10), (6, "3", 1, 2), (7, "MT", 1, 2), (7, "M", 3, 40),
    ])
    # GO:1 is annotated to many (fake) genes -> generic; GO:2 and GO:6 to 5 genes -> informative; GO:3 to one
    rows = [(1, "GO:1", "IDA"), (1, "GO:2", "IEA"), (1, "GO:6", "IDA"), (1, "GO:3", "IDA"), (1, "GO:5", "ND"),
            (1, "GO:2", "IEA"), (2, "GO:4", "IEA")]
    rows += [(100 + i, "GO:1", "IEA") for i in range(400)]
    rows += [(200 + i, go_id, "IEA") for i in range(4) for go_id in ("GO:2", "GO:6")]
    org.executemany("INSERT INTO go_bp VALUES (?, ?, ?)", rows)
    org.commit()
    org.close()
    return org_path, go_path


@pytest.fixture()
def tiny_sqlite(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "root" / "usr" / "lib"
    folder.mkdir(parents=True)
    return _make_sqlite(folder)


def test_build_from_tiny_sqlite(tiny_sqlite: tuple[Path, Path]) -> None:
    df = build_annotation_table(*tiny_sqlite).set_index("gene_id")
    assert set(df.index) == {"ENSG00000000001", "ENSG00000000002", "ENSG00000000004", "ENSG00000000007",
                             "ENSG00000000008"}
    minus = df.loc["ENSG00000000001"]
    assert minus["symbol"] == "MINUS"  # protein-coding wins the shared ENSG over the LOC ncRNA
    assert (minus["chrom"], minus["start"], minus["end"], minus["strand"]) == ("chr17", 1000, 5500, "-")
    # informative band (IDA before IEA), then rare, then generic; ND ignored
    assert minus["go_bp"] == "also informative; informative process; rare process; generic process"
    assert minus["description"] == (
        "MINUS (minus strand gene) is a protein-coding gene on chr17. Biological processes: also informative; "
        "informative process; rare process; generic process.")
    plus = df.loc["ENSG00000000002"]
    assert (plus["chrom"], plus["strand"], plus["gene_type"]) == ("chr1", "+", "ncRNA")
    assert df.loc["ENSG00000000004", "chrom"] == "chrX"  # PAR tie: chromosome order
    two = df.loc[["ENSG00000000007", "ENSG00000000008"]]
    assert set(two["symbol"]) == {"TWOENS"} and set(two["chrom"]) == {"chrM"}
    assert two["gene_type"].iloc[0] == "pseudogene"
    assert two["description"].iloc[0] == ("TWOENS (two Ensembl ids) is a pseudogene on chrM. "
                                          "It has no Gene Ontology biological-process annotation.")
    assert df.attrs["sources"] == {"EGSOURCEDATE": "2099-Jan01", "GOSOURCEDATE": "2099-01-01",
                                   "ENSOURCEDATE": "2099-Jan02"}


def test_write_is_reproducible_and_round_trips(tiny_sqlite: tuple[Path, Path], tmp_path: Path) -> None:
    df = build_annotation_table(*tiny_sqlite)
    a = write_annotation_table(df, tmp_path / "a" / "genes.tsv.gz")
    b = write_annotation_table(df, tmp_path / "b" / "genes.tsv.gz")
    assert a.read_bytes() == b.read_bytes()
    gzip.decompress(a.read_bytes())  # valid gzip
    meta = json.loads((tmp_path / "a" / "genes.meta.json").read_text())
    assert meta["rows"] == 5 and meta["sources"]["GOSOURCEDATE"] == "2099-01-01"
    back = load_human_genes.__wrapped__(a)
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True), check_dtype=False)


def test_build_annotations_cli_and_script(tiny_sqlite: tuple[Path, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from gta.cli import main

    root = tiny_sqlite[0].parents[2]
    assert find_sqlite(root) == tiny_sqlite
    out = tmp_path / "cli.tsv.gz"
    monkeypatch.setattr(sys, "argv", ["gta", "annotations", "build", "--sqlite-dir", str(root), "--out", str(out)])
    main()
    assert "5 genes" in capsys.readouterr().out
    built = out.read_bytes()
    out.write_bytes(b"mine")
    with pytest.raises(SystemExit) as exc:  # the same --out again: refused, the file kept; --overwrite replaces it
        main()
    assert exc.value.code == 2 and "already exists" in capsys.readouterr().err and out.read_bytes() == b"mine"
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--overwrite"])
    main()
    assert out.read_bytes() == built
    monkeypatch.setattr(sys, "argv", ["gta", "annotations", "build", "--sqlite-dir", str(tmp_path / "none")])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "no org.Hs.eg.sqlite" in capsys.readouterr().err
    script_out = tmp_path / "script.tsv.gz"
    monkeypatch.setattr(sys, "argv", ["build_annotations.py", "--sqlite-dir", str(root), "--out", str(script_out)])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(REPO / "scripts" / "build_annotations.py"), run_name="__main__")
    assert exc.value.code == 0 and script_out.read_bytes() == out.read_bytes()


def test_missing_sqlite_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(GtaInputError, match="not found"):
        build_annotation_table(tmp_path / "org.sqlite", tmp_path / "go.sqlite")


@pytest.mark.slow
def test_real_build_matches_shipped_table(tmp_path: Path) -> None:
    """Rebuild from the Debian .deb files (folder in $GTA_ANNOTATION_DEBS) and compare with the shipped table."""
    debs = os.environ.get("GTA_ANNOTATION_DEBS")
    if not debs or len(list(Path(debs).glob("r-bioc-*.deb"))) < 2:
        pytest.skip("set GTA_ANNOTATION_DEBS to a folder with the r-bioc-org.hs.eg.db and r-bioc-go.db .deb files")
    out = build_annotations(debs_dir=debs, out=tmp_path / "h.tsv.gz")
    pd.testing.assert_frame_equal(load_human_genes.__wrapped__(out), load_human_genes())


# ------------------------------------------------------------------------------------- user annotation files


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ann.tsv"
    path.write_text(text)
    return path


def test_read_annotations_good(tmp_path: Path) -> None:
    path = _write(tmp_path, "# my notes\ngene_id\tsymbol\tdescription\n"
                            "ENSG00000000001.4\tABC\tA kinase.\n\nG2\t\tAnother gene, with commas.\n")
    assert read_annotations(path) == {"ENSG00000000001": "A kinase.", "G2": "Another gene, with commas."}
    rows = read_annotation_table(path)
    assert rows["ENSG00000000001"] == {"gene_id": "ENSG00000000001", "symbol": "ABC", "description": "A kinase."}
    assert annotation_for(None, "abc", rows)["gene_id"] == "ENSG00000000001"


@pytest.mark.parametrize(
    ("text", "line", "pattern"),
    [
        ("gene\tdescription\nG1\tx\n", 1, "lacks column.*gene_id"),
        ("gene_id\tname\nG1\tx\n", 1, "lacks column.*description"),
        ("gene_id\tdescription\nG1\tx\nG2 only spaces\n", 3, "expected 2 tab-separated fields, found 1"),
        ("gene_id\tdescription\nG1\tx\tspare\n", 2, "found 3"),
        ("gene_id\tdescription\nENSG1.1\tx\nENSG1.2\ty\n", 3, "duplicate gene_id ENSG1 .*line 2"),
        ("gene_id\tdescription\nG1\t\n", 2, "empty description"),
        ("gene_id\tdescription\n\tx\n", 2, "empty gene_id"),
        ("gene_id\tdescription\tgene_id\nG\tx\ty\n", 1, "repeats"),
    ],
)
def test_read_annotations_errors(tmp_path: Path, text: str, line: int, pattern: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(GtaInputError) as exc:
        read_annotations(path)
    assert exc.value.path == str(path) and exc.value.line == line
    assert re.search(pattern, exc.value.message)
    assert f"{path}:{line}: " in exc.value.one_line()


def test_read_annotations_empty_and_missing(tmp_path: Path) -> None:
    with pytest.raises(GtaInputError, match="empty"):
        read_annotations(_write(tmp_path, "# only a comment\n"))
    with pytest.raises(GtaInputError, match="not found"):
        read_annotations(tmp_path / "nope.tsv")
    with pytest.raises(GtaInputError, match="missing"):
        load_human_genes.__wrapped__(tmp_path / "nope.tsv.gz")
