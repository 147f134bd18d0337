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


# -- variant_policy ----------------------------------------------------------------------------------------------
def test_variant_policy_is_read_and_carried_by_the_dataset(tmp_path):
    from gta.io.dataset import open_dataset
    from gta.io.variants import HaplotypePolicy

    p = make_dataset(tmp_path / "a", variant_policy={"filter_pass": True, "unphased": "as-phased",
                                                     "multiallelic": "ref", "missing": "error"})
    want = HaplotypePolicy(filter_pass=True, unphased="as-phased", multiallelic="ref", missing="error")
    assert load_manifest(p).variant_policy == want and open_dataset(p).variant_policy == want
    plain = make_dataset(tmp_path / "b")
    assert load_manifest(plain).variant_policy is None and open_dataset(plain).variant_policy == HaplotypePolicy()


@pytest.mark.parametrize(("policy", "needle"), [
    ({"filter": True}, r"unknown key\(s\) \['filter'\] in 'variant_policy'"),
    ({"samples": ["NA18500"]}, "samples are chosen per command"),
    ({"unphased": "maybe"}, r"variant_policy\.unphased='maybe' is not one of \['auto', 'ref', 'as-phased', 'error'\]"),
    ({"multiallelic": "drop"}, r"variant_policy\.multiallelic='drop'"),
    ({"filter_pass": "yes"}, "filter_pass must be true or false"),
    ({"overlap": 1}, r"variant_policy\.overlap=1"),
    (["filter_pass"], "'variant_policy' must be a mapping"),
])
def test_bad_variant_policy_names_the_manifest(tmp_path, policy, needle):
    p = make_dataset(tmp_path / "d", variant_policy=policy)
    with pytest.raises(GtaInputError, match=needle) as e:
        load_manifest(p)
    assert "dataset.yaml" in e.value.one_line() and "\n" not in e.value.one_line()


def test_dataset_hash_changes_with_the_variant_policy(tmp_path):
    from gta.io.dataset import open_dataset

    def fingerprint(name: str, policy: dict | None) -> str:
        return open_dataset(make_dataset(tmp_path / name, with_vcf=True, variant_policy=policy)).fingerprint()

    default = fingerprint("default", None)
    assert fingerprint("explicit-default", {"multiallelic": "split", "filter_pass": False}) == default  # same data
    passing = fingerprint("pass", {"filter_pass": True})
    as_phased = fingerprint("as-phased", {"unphased": "as-phased"})
    assert len({default, passing, as_phased}) == 3
    assert fingerprint("pass-again", {"filter_pass": True}) == passing  # the same files and policy: same hash


def test_inspection_commands_use_the_manifest_policy_unless_a_flag_overrides(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from fixtures import CHROM_LENGTHS, default_sequences, write_vcf
    from gta.cli import app

    folder = tmp_path / "d"
    samples = ["NA18500", "NA18501"]
    p = make_dataset(folder, samples=samples, geometry={"input_len": 64, "bin_size": 8, "output_bins": 4},
                     variant_policy={"unphased": "as-phased"})
    pos = 1994  # 0-based, 5 bp downstream of BETA's minus-strand TSS (1999)
    ref = default_sequences(0)["chr1"][pos]
    write_vcf(folder / "variants.vcf.gz", CHROM_LENGTHS, samples,
              [("chr1", pos + 1, ref, "A" if ref != "A" else "C", ["0/1", "1|1"])])
    raw = yaml.safe_load(p.read_text())
    raw["variants"] = "variants.vcf.gz"
    p.write_text(yaml.safe_dump(raw))

    def run(*args: str) -> str:
        res = CliRunner().invoke(app, ["variants", "-d", str(p), "-g", "BETA", "-s", "NA18500", *args])
        assert res.exit_code == 0, res.output
        return res.output

    assert "0/1 (unphased: read as phased) -> h2" in run()  # the manifest's policy
    assert "0/1 (unphased: reference) -> -" in run("--unphased", "ref")  # an explicit flag wins
    header = CliRunner().invoke(app, ["sequence", "-d", str(p), "-g", "BETA", "-s", "NA18500", "-H", "2"]).output
    assert "variants=1" in header.splitlines()[0]
    header = CliRunner().invoke(app, ["sequence", "-d", str(p), "-g", "BETA", "-s", "NA18500", "-H", "2",
                                      "--unphased", "ref"]).output
    assert "variants=0" in header.splitlines()[0] and "key=ref" in header
