import gzip

import numpy as np
import pandas as pd
import pytest

from fixtures import default_genes, expression_values, write_expression_tsv, write_geuvadis
from gta.errors import GtaInputError
from gta.io.expression import SKIP_ALL_MISSING, apply_transform, match_report, read_expression
from gta.io.types import Gene

SAMPLES = ["HG00096", "HG00097", "NA18486", "NA19239"]
IDS = [g.gene_id for g in default_genes()]


def test_geuvadis_layout(tmp_path):
    values = expression_values(IDS, SAMPLES, seed=3)
    p = write_geuvadis(tmp_path / "GD462.GeneQuantRPKM.50FN.samplename.resk10.txt", default_genes(), SAMPLES, values)
    t = read_expression(p)
    assert list(t.values.columns) == SAMPLES
    assert list(t.values.index) == [i.split(".")[0] for i in IDS]
    assert t.values.dtypes.eq(np.float64).all()
    np.testing.assert_array_equal(t.values.to_numpy(), values)
    assert t.symbols["ENSG90000000002"] == "BETA"
    assert t.skipped == {}


@pytest.mark.parametrize("kind", ["tsv", "csv", "tsv.gz", "parquet"])
def test_plain_layouts(tmp_path, kind):
    values = expression_values(IDS, SAMPLES, seed=1)
    if kind == "parquet":
        p = tmp_path / "e.parquet"
        pd.DataFrame(values, index=pd.Index(IDS, name="gene_id"), columns=SAMPLES).to_parquet(p)
    else:
        p = write_expression_tsv(tmp_path / "e.tmp", IDS, SAMPLES, values, sep="," if kind == "csv" else "\t")
        target = tmp_path / f"e.{kind}"
        if kind.endswith(".gz"):
            target.write_bytes(gzip.compress(p.read_bytes()))
        else:
            p.rename(target)
        p = target
    t = read_expression(p)
    assert list(t.values.columns) == SAMPLES
    assert t.values.index[0] == "ENSG90000000001"
    np.testing.assert_allclose(t.values.to_numpy(), values)


def test_gct(tmp_path):
    p = tmp_path / "e.gct"
    p.write_text("#1.2\n2\t2\nName\tDescription\tS1\tS2\nENSG1.1\tA\t1\t2\nENSG2.5\tB\t3\t4.5\n")
    t = read_expression(p)
    assert list(t.values.columns) == ["S1", "S2"] and list(t.values.index) == ["ENSG1", "ENSG2"]
    assert t.values.loc["ENSG2", "S2"] == 4.5


def test_metadata_columns_are_not_samples(tmp_path):
    p = tmp_path / "e.tsv"
    p.write_text("gene_id\tsymbol\tlength\tS1\tS2\nENSG1\tA\t100\t1\t2\n")
    t = read_expression(p)
    assert list(t.values.columns) == ["S1", "S2"] and t.symbols == {"ENSG1": "A"}


def test_transforms(tmp_path):
    values = expression_values(IDS, SAMPLES, seed=2)
    p = write_expression_tsv(tmp_path / "e.tsv", IDS, SAMPLES, values)
    np.testing.assert_allclose(read_expression(p, "log1p").values.to_numpy(), np.log1p(values))
    z = read_expression(p, "standardize").values.to_numpy()
    np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=1), 1, atol=1e-12)
    lz = read_expression(p, "log1p+standardize").values.to_numpy()
    ref = np.log1p(values)
    np.testing.assert_allclose(lz, (ref - ref.mean(1, keepdims=True)) / ref.std(1, keepdims=True))
    with pytest.raises(GtaInputError, match="unknown expression transform"):
        read_expression(p, "zscore")


def test_transform_edge_cases():
    df = pd.DataFrame([[1.0, np.nan, 3.0], [2.0, 2.0, 2.0]], index=["a", "b"], columns=["x", "y", "z"])
    out = apply_transform(df, "standardize")
    assert np.isnan(out.loc["a", "y"]) and out.loc["a", "x"] == -1.0 and out.loc["a", "z"] == 1.0
    assert (out.loc["b"] == 0).all()  # constant gene
    with pytest.raises(GtaInputError, match="log1p needs values >= 0"):
        apply_transform(df - 5, "log1p")


def test_missing_values_are_kept_and_empty_rows_dropped(tmp_path):
    p = tmp_path / "e.tsv"
    p.write_text("gene_id\tS1\tS2\nENSG1\t1\tNA\nENSG2\t\tNaN\nENSG3\t2\t3\n")
    t = read_expression(p)
    assert list(t.values.index) == ["ENSG1", "ENSG3"]
    assert np.isnan(t.values.loc["ENSG1", "S2"])
    assert t.skipped == {SKIP_ALL_MISSING: 1}


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("gene_id\tS1\tS2\nENSG1\t1\t2\nENSG2\t3\tabc\n", 3, "'abc' in column 'S2'"),
    ("gene_id\tS1\tS2\nENSG1\t1\t2\nENSG1.4\t3\t4\n", 3, "duplicate gene id ENSG1"),
    ("gene_id\tS1\tS1\nENSG1\t1\t2\n", 1, "repeated column"),
    ("gene_id\tS1\tS2\nENSG1\t1\n", 2, "expected 3 fields"),
    ("# comment\ngene_id\tS1\tS2\nENSG1\t1\tinf\n", 3, "infinite"),
])
def test_errors_name_file_line_and_column(tmp_path, text, line, needle):
    p = tmp_path / "bad.tsv"
    p.write_text(text)
    with pytest.raises(GtaInputError, match=needle) as e:
        read_expression(p)
    assert e.value.line == line and "bad.tsv" in e.value.one_line()


def test_transposed_matrix_is_refused(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("sample\tENSG90000000001\tENSG90000000002\nHG00096\t1\t2\nHG00097\t3\t4\n")
    with pytest.raises(GtaInputError, match="transpose"):
        read_expression(p)


def test_match_report_by_id_and_symbol(tmp_path):
    genes = [Gene("ENSG90000000001", "ALPHA", "chr1", 0, "+"), Gene("ENSG90000000099", "BETA", "chr1", 5, "+"),
             Gene("ENSG90000000077", "NOPE", "chr1", 9, "-")]
    p = write_geuvadis(tmp_path / "g.txt", default_genes()[:3], SAMPLES)
    t = read_expression(p)
    r = match_report(t, genes)
    assert (r["matched"], r["matched_by_id"], r["matched_by_symbol"]) == (2, 1, 1)
    assert r["genes_without_expression"] == 1 and r["expression_without_gene"] == 1
    aligned = t.for_genes(genes)
    assert list(aligned.index) == ["ENSG90000000001", "ENSG90000000099"]
    np.testing.assert_array_equal(aligned.loc["ENSG90000000099"], t.values.loc["ENSG90000000002"])


def test_r_write_table_header_without_row_name_column(tmp_path):
    p = tmp_path / "r.tsv"
    p.write_text('"S1"\t"S2"\n"ENSG1.2"\t1\t2\n"ENSG2"\t3\t4\n')
    t = read_expression(p)
    assert list(t.values.columns) == ["S1", "S2"] and list(t.values.index) == ["ENSG1", "ENSG2"]
    assert t.values.loc["ENSG2", "S1"] == 3.0
