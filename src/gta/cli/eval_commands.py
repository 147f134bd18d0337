"""CLI commands: benchmark, demo."""

from __future__ import annotations

from pathlib import Path

import typer

from gta.cli.app import app
from gta.cli.options import config_option, data_option, features_option, out_option, set_threads, threads_option


@app.command("benchmark")
def benchmark_command(
    data: Path = data_option(),
    features: Path = features_option(),
    out: Path = out_option(Path("runs/bench"), "Output folder: results.json, report.html, runs/."),
    config: Path | None = config_option("Benchmark YAML: models, GTA training config, ..."),
    threads: int | None = threads_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train and evaluate GTA, its ablations and the baselines on identical splits; write a report."""
    from gta.evaluate.benchmark import benchmark

    set_threads(threads)
    report = benchmark(data, features, out, config=config, progress=not quiet)
    typer.echo(f"report: {report}")


@app.command("demo")
def demo_command(
    out: Path = out_option(Path("runs/demo"), "Output folder for data, features and the report."),
    quick: bool = typer.Option(False, "--quick", help="Tiny preset and few steps (about 2 minutes)."),
    seed: int = typer.Option(0, "--seed", help="Simulation and training seed."),
    threads: int | None = threads_option(),
) -> None:
    """The whole path on the embedded default: simulate -> validate -> extract -> benchmark -> report."""
    from gta.demo import demo

    set_threads(threads)
    report = demo(out, quick=quick, seed=seed)
    typer.echo(f"open the report: {report}")
