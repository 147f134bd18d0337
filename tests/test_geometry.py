import pytest

from gta.geometry import Geometry


@pytest.mark.parametrize("strand", ["+", "-"])
def test_tss_sits_at_centre_on_both_strands(strand):
    g = Geometry()
    tss = 1_000_000
    start, end = g.window(tss, strand)
    assert end - start == g.input_len
    assert g.index_to_genome(g.tss_index, tss, strand) == tss
    assert g.genome_to_index(tss, tss, strand) == g.tss_index


@pytest.mark.parametrize("strand", ["+", "-"])
def test_bins_tile_the_output_span_and_contain_the_tss(strand):
    g = Geometry(input_len=4096, bin_size=128, output_bins=16)
    tss = 50_000
    spans = [g.bin_to_genome(b, tss, strand) for b in range(g.output_bins)]
    assert all(hi - lo == g.bin_size for lo, hi in spans)
    ordered = sorted(spans)
    assert all(a.end == b.start for a, b in zip(ordered, ordered[1:], strict=False))
    lo, hi = spans[g.tss_bin]
    assert lo <= tss < hi
    # upstream is left: bin 0 lies upstream of the TSS on either strand
    first = spans[0].start
    assert (first < tss) if strand == "+" else (first > tss)


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError):
        Geometry(input_len=1000, bin_size=128)
    with pytest.raises(ValueError):
        Geometry(input_len=1280, bin_size=128, output_bins=9)
