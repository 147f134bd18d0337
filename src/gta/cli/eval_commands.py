"""CLI commands: benchmark, demo."""

from __future__ import annotations

from pathlib import Path

import typer

from gta.cli.app import app


@app.command("benchmark")
def benchmark_command(
    data: Path = typer.Option(..., "--data", help="Data set manifest (dataset.yaml)."),
    features: Path = typer.Option(..., "--features", help="Feature store made by `gta extract`."),
    out: Path = typer.Option(Path("runs/bench"), "--out", help="Output folder: results.json, report.html, runs/."),
    config: Path | None = typer.Option(None, "--config", help="Benchmark YAML: models, GTA training config, ..."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train and evaluate GTA, its ablations and the baselines on identical splits; write a report."""
    from gta.evaluate.benchmark import benchmark

    report = benchmark(data, features, out, config=config, progress=not quiet)
    typer.echo(f"report: {report}")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Output folder for data, features and the report."),
    quick: bool = typer.Option(False, "--quick", help="Tiny preset and few steps (about 2 minutes)."),
    seed: int = typer.Option(0, "--seed", help="Simulation and training seed."),
) -> None:
    """The whole path on the embedded default: simulate -> validate -> extract -> benchmark -> report."""
    from gta.demo import demo

    report = demo(out, quick=quick, seed=seed)
    typer.echo(f"open the report: {report}")
