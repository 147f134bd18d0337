"""The options every command spells the same way (samtools/bcftools habits), and the parsers of their values.

| option | meaning |
|---|---|
| ``-d, --data FILE`` | the data set manifest (dataset.yaml) |
| ``-o, --out PATH`` | what the command writes (a file or a folder, per command) |
| ``-f, --features DIR`` | a feature store written by ``gta extract`` |
| ``-r, --run DIR`` | a run folder written by ``gta train`` |
| ``-c, --config FILE`` | a YAML config |
| ``-g, --gene NAME`` | one gene (id, with or without version, or symbol) |
| ``--genes LIST`` | several genes: ``A,B,C``, or ``@FILE`` with one gene per line (``#`` starts a comment) |
| ``-s, --sample NAME`` | one sample (commands that show one) |
| ``-s, --samples LIST`` | several samples: ``all`` or ``A,B,C``; ``-S, --samples-file FILE``: one per line |
| ``--threads N`` | CPU threads for torch (and numba) |
| ``--device D`` | ``auto`` (default: CUDA when present), ``cpu``, ``cuda`` or ``cuda:N`` |
| ``-h, --help`` / ``--version`` | on every command |

A region, where one is taken, is ``chr:start-end`` (1-based, inclusive, as samtools and bcftools read it).
"""

from __future__ import annotations

from pathlib import Path

import typer

from gta.errors import GtaInputError

DATA_HELP = "Data set manifest (dataset.yaml)."
GENES_HELP = "Genes: a comma-separated list of ids/symbols, or @FILE (one per line; # comments)."
SAMPLES_HELP = "Samples: all, or a comma-separated list (-S for a file)."
SAMPLES_FILE_HELP = "File with one sample per line (# comments); like bcftools -S."
THREADS_HELP = "CPU threads for torch and numba (default: their own choice)."
DEVICE_HELP = "cpu, cuda, cuda:N or auto (CUDA when present)."


def data_option(help: str = DATA_HELP):  # noqa: A002 - typer's own keyword
    return typer.Option(..., "--data", "-d", help=help)


def out_option(default, help: str):  # noqa: A002
    return typer.Option(default, "--out", "-o", help=help)


def features_option(default=..., help: str = "Feature store made by `gta extract`."):  # noqa: A002
    return typer.Option(default, "--features", "-f", help=help)


def run_option():
    return typer.Option(..., "--run", "-r", help="Run folder written by gta train.")


def config_option(help: str):  # noqa: A002
    return typer.Option(None, "--config", "-c", help=help)


def genes_option(help: str = GENES_HELP):  # noqa: A002
    return typer.Option(None, "--genes", help=help)


def samples_option(help: str = SAMPLES_HELP):  # noqa: A002
    return typer.Option(None, "--samples", "-s", help=help)


def samples_file_option():
    return typer.Option(None, "--samples-file", "-S", help=SAMPLES_FILE_HELP)


def threads_option():
    return typer.Option(None, "--threads", min=1, help=THREADS_HELP)


def device_option(help: str = DEVICE_HELP):  # noqa: A002
    return typer.Option("auto", "--device", help=help)


def overwrite_option():
    return typer.Option(False, "--overwrite", help="Replace output files that already exist (default: refuse, so a "
                                                   "mistyped --out cannot clobber a file).")


def refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """Never overwrite a user's file unasked: an output that exists is an error unless ``--overwrite``."""
    if overwrite:
        return
    for path in paths:
        if Path(path).exists():
            raise GtaInputError("output file already exists", path,
                                hint="pass --overwrite to replace it, or another --out")


def refuse_filled_folder(folder: Path, overwrite: bool) -> None:
    """An output folder that already holds files (an earlier run's results) is an error unless ``--overwrite``;
    with it, only the files the command writes are replaced."""
    folder = Path(folder)
    if not overwrite and folder.is_dir() and any(folder.iterdir()):
        raise GtaInputError("output folder is not empty", folder,
                            hint="pass --overwrite to replace its results, or another --out")


def single_view_option():
    """``--no-mirror-average``: the value to pass on is ``mirror_average=False if single_view else None``."""
    return typer.Option(False, "--no-mirror-average",
                        help="Use each window once, in half the time, rather than the mean over it and its mirror "
                             "about the TSS (the run's default when it was trained on mirrored windows).")


def _read_list(path: Path, option: str) -> list[str]:
    if not path.is_file():
        raise GtaInputError(f"{option}: no such file", path, hint=f"give {option} a comma-separated list, or a file")
    return [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines() if ln.split("#", 1)[0].strip()]


def parse_genes(value: str | None, option: str = "--genes") -> list[str] | None:
    """``A,B,C`` or ``@FILE`` (one gene per line, ``#`` comments) -> the genes; ``None`` -> None (all genes)."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("@"):
        genes = _read_list(Path(text[1:]), option)
        where = f" in {text[1:]}"
    else:
        genes = [g.strip() for g in text.split(",") if g.strip()]
        where = ""
    if not genes:
        raise GtaInputError(f"{option} names no gene{where}", hint="give ids/symbols: A,B,C or @FILE")
    return genes


def parse_samples(samples: str | None, samples_file: Path | None) -> list[str] | str | None:
    """``-s all|A,B`` and ``-S FILE`` -> ``"all"``, a list of samples, or None (no samples: reference only)."""
    if samples is not None and samples_file is not None:
        raise GtaInputError("-s/--samples and -S/--samples-file are exclusive", hint="give one of them")
    if samples_file is not None:
        names = _read_list(Path(samples_file), "-S/--samples-file")
        if not names:
            raise GtaInputError("-S/--samples-file names no sample", samples_file)
        return names
    if samples is None:
        return None
    text = samples.strip()
    if text.lower() == "all":
        return "all"
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise GtaInputError("-s/--samples names no sample", hint="give all, or A,B,C")
    return names


def set_threads(threads: int | None) -> None:
    """``--threads N``: torch's intra-op threads and numba's (capped at numba's pool size)."""
    if threads is None:
        return
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
