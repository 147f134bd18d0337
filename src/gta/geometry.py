"""Window geometry: one frozen dataclass used by every stage, and :class:`Interval`, the genome interval its
windows and bins are.

Index order inside a window is always the direction of transcription: minus-strand windows are
reverse-complemented, so "upstream" is always left and the TSS sits at index ``input_len // 2``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass


@dataclass(frozen=True, order=True)
class Interval:
    """A genome interval, 0-based half-open ``[start, end)`` (as kipoiseq's ``Interval``, BED and Python slices;
    VCF/GTF positions are 1-based: ``pos = start + 1``). Unpacks as ``start, end = interval``; sorts as
    ``(start, end)``."""

    start: int
    end: int

    @property
    def width(self) -> int:
        return self.end - self.start

    def __iter__(self) -> Iterator[int]:
        yield self.start
        yield self.end


@dataclass(frozen=True)
class Geometry:
    """Input length, bin size and the number of (central) output bins that encoders emit."""

    input_len: int = 196_608
    bin_size: int = 128
    output_bins: int = 896

    def __post_init__(self) -> None:
        if self.input_len % self.bin_size:
            raise ValueError(f"input_len {self.input_len} is not a multiple of bin_size {self.bin_size}")
        if self.output_bins > self.input_bins or (self.input_bins - self.output_bins) % 2:
            raise ValueError(
                f"output_bins {self.output_bins} must be <= input bins {self.input_bins} "
                "and leave an even crop"
            )

    @property
    def input_bins(self) -> int:
        return self.input_len // self.bin_size

    @property
    def crop_bins(self) -> int:
        """Bins cropped from each side of the input to get the output bins."""
        return (self.input_bins - self.output_bins) // 2

    @property
    def tss_index(self) -> int:
        """Index of the TSS base inside the input window."""
        return self.input_len // 2

    @property
    def tss_bin(self) -> int:
        """Output bin that holds the TSS."""
        return self.tss_index // self.bin_size - self.crop_bins

    @property
    def output_span(self) -> int:
        return self.output_bins * self.bin_size

    def window(self, tss: int, strand: str) -> Interval:
        """0-based half-open genome interval of the input window for a TSS (0-based) on a strand.

        Plus strand: window index i is genome position start + i. Minus strand: the window is the reverse
        complement, index i is genome position end - 1 - i; both put the TSS at ``tss_index``.
        """
        if strand == "+":
            start = tss - self.tss_index
        elif strand == "-":
            start = tss + self.tss_index + 1 - self.input_len
        else:
            raise ValueError(f"strand must be '+' or '-', got {strand!r}")
        return Interval(start, start + self.input_len)

    def index_to_genome(self, index: int, tss: int, strand: str) -> int:
        """Genome position (0-based) of window index ``index``."""
        start, end = self.window(tss, strand)
        return start + index if strand == "+" else end - 1 - index

    def genome_to_index(self, pos: int, tss: int, strand: str) -> int:
        """Window index of a genome position (0-based); may fall outside [0, input_len)."""
        start, end = self.window(tss, strand)
        return pos - start if strand == "+" else end - 1 - pos

    def bin_to_genome(self, out_bin: int, tss: int, strand: str) -> Interval:
        """0-based half-open genome interval covered by output bin ``out_bin``."""
        lo = (self.crop_bins + out_bin) * self.bin_size  # window index of the bin's first base
        hi = lo + self.bin_size
        a = self.index_to_genome(lo, tss, strand)
        b = self.index_to_genome(hi - 1, tss, strand)
        return Interval(min(a, b), max(a, b) + 1)

    def bin_distance_to_tss(self, out_bin: int) -> int:
        """Signed distance (bp, direction of transcription) from the TSS to the centre of an output bin."""
        centre = (self.crop_bins + out_bin) * self.bin_size + self.bin_size // 2
        return centre - self.tss_index

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Geometry:
        return cls(**(d or {}))


ENFORMER = Geometry()
