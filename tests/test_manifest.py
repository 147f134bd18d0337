import pytest

from fixtures import make_dataset
from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.manifest import load_manifest, write_manifest


def test_paths_resolve_against_the_manifest_folder(tmp_path):
    m = load_manifest(make_dataset(tmp_path / "d"))
    assert m.genome == tmp_path / "d" / "genome.fa" and m.genes.name == "genes.gtf"
    assert m.expression is not None and m.variants is None
    assert m.name == "test" and m.geometry == Geometry() and m.expression_transform == "none"


def test_folder_with_dataset_yaml_is_accepted(tmp_path):
    make_dataset(tmp_path / "d")
    assert load_manifest(tmp_path / "d").path.name == "dataset.yaml"


def test_splits_accept_a_single_chromosome_and_gene_lists(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "test.txt").write_text("ALPHA\n")
    p = make_dataset(tmp_path / "d", splits={"val_chroms": "chr2", "test_chroms": [3, "chr4"], "seed": 5,
                                             "test_genes": "test.txt", "test_individual_fraction": 0.25})
    s = load_manifest(p).splits
    assert s.val_chroms == ("chr2",) and s.test_chroms == ("3", "chr4")
    assert s.seed == 5 and s.test_individual_fraction == 0.25
    assert s.test_genes == tmp_path / "d" / "test.txt" and s.val_genes is None


@pytest.mark.parametrize(("extra", "needle"), [
    ({"splits": ["chr1"]}, "must be a mapping"),
    ({"splits": {"val_chrom": ["chr1"]}}, "unknown key"),
    ({"splits": {"test_individual_fraction": 1.5}}, "not in \\[0, 1\\)"),
    ({"splits": {"seed": "abc"}}, "bad 'splits'"),
    ({"splits": {"val_genes": "missing.txt"}}, "does not exist"),
    ({"geometry": {"input_len": 1000, "bin_size": 128}}, "bad 'geometry'"),
    ({"expression_transform": "zscore"}, "expression_transform"),
    ({"colour": "blue"}, "unknown key"),
])
def test_bad_manifests(tmp_path, extra, needle):
    p = make_dataset(tmp_path / "d", **extra)
    with pytest.raises(GtaInputError, match=needle) as e:
        load_manifest(p)
    assert "dataset.yaml" in e.value.one_line()


def test_missing_files_and_bad_yaml(tmp_path):
    with pytest.raises(GtaInputError, match="manifest not found"):
        load_manifest(tmp_path / "nope.yaml")
    p = tmp_path / "m.yaml"
    p.write_text("genome: [unclosed\n")
    with pytest.raises(GtaInputError, match="not valid YAML"):
        load_manifest(p)
    p.write_bytes(b"genome: \xff\xfe\n")
    with pytest.raises(GtaInputError, match="UTF-8"):
        load_manifest(p)
    write_manifest(p, {"genome": "g.fa", "genes": "genes.gtf"})
    with pytest.raises(GtaInputError, match="does not exist"):
        load_manifest(p)
    write_manifest(p, {"genes": "genes.gtf"})
    with pytest.raises(GtaInputError, match="missing required key 'genome'"):
        load_manifest(p)
