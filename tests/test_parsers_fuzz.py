"""Random, truncated and mutated inputs: every parser either parses or raises GtaInputError, nothing else."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures import default_genes, gff3_text, gtf_text, random_sequence, write_fasta, write_gene_tsv, write_geuvadis
from gta.errors import GtaInputError
from gta.io.expression import read_expression
from gta.io.genes import read_genes
from gta.io.genome import ChromNames, Genome

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NAMES = ChromNames(["chr1", "chr2", "chr3", "chr4"])
FIELD_ALPHABET = "\t\n;=\"'#>+-.,0123456789 ACGTNacgtnRYchrgeneid_transcript:%\r\xff\u00e9"


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("valid")
    genes = default_genes()[:4]
    return {
        "gtf": gtf_text(genes).encode(),
        "gff3": gff3_text(genes, "ensembl").encode(),
        "tsv": write_gene_tsv(d / "g.tsv", genes).read_bytes(),
        "expr": write_geuvadis(d / "e.txt", genes, ["S1", "S2", "S3"]).read_bytes(),
        "fa": write_fasta(d / "g.fa", {"chr1": random_sequence(130, 1), "chr2": random_sequence(70, 2)},
                          line_width=20, index=False).read_bytes(),
    }


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _mutate(data: bytes, cut: int, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data[: cut % (len(data) + 1)])
    for pos, byte in edits:
        if out:
            out[pos % len(out)] = byte
    return bytes(out)


def _parse_genes(path: Path) -> None:
    try:
        table = read_genes(path, NAMES, progress=False)
    except GtaInputError:
        return
    for g in table.genes:
        assert g.strand in "+-" and g.tss >= 0 and g.chrom in NAMES.names


def _parse_expression(path: Path) -> None:
    for transform in ("none", "log1p+standardize"):
        try:
            t = read_expression(path, transform)
        except GtaInputError:
            return
        assert t.values.dtypes.eq("float64").all()


def _parse_fasta(path: Path) -> None:
    for p in (Path(str(path) + ".fai"), Path(str(path) + ".gzi")):
        p.unlink(missing_ok=True)
    try:
        g = Genome(path)
        for name, length in g.lengths.items():
            seq = g.fetch(name, -3, length + 3)
            assert len(seq) == length + 6 and set(seq) <= set("ACGTN")
        g.scan()
        g.close()
    except GtaInputError:
        return


edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4)
PARSERS = {"gtf": _parse_genes, "gff3": _parse_genes, "tsv": _parse_genes, "expr": _parse_expression,
           "fa": _parse_fasta}
SUFFIX = {"gtf": ".gtf", "gff3": ".gff3", "tsv": ".tsv", "expr": ".txt", "fa": ".fa"}
random_input = st.one_of(st.text(alphabet=FIELD_ALPHABET, max_size=300).map(lambda t: t.encode()),
                         st.binary(max_size=200))


@pytest.mark.parametrize("kind", list(PARSERS))
@SETTINGS
@given(data=random_input)
def test_random_input(work, kind, data):
    path = work / f"random{SUFFIX[kind]}"
    path.write_bytes(data)
    PARSERS[kind](path)


@pytest.mark.parametrize("kind", list(PARSERS))
@SETTINGS
@given(cut=st.integers(0, 10_000), changes=edits)
def test_truncated_and_mutated(valid, work, kind, cut, changes):
    path = work / f"mutated{SUFFIX[kind]}"
    path.write_bytes(_mutate(valid[kind], cut, changes))
    PARSERS[kind](path)
