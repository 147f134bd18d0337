"""Every command follows one option convention (gta.cli.options), and every usage error of every command is one
line on stderr with exit code 2 and no traceback: through ``gta.cli.main``, which maps the exceptions."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from fixtures import cli_commands, run_cli
from gta.cli import app

# the long name of an option -> the short name it must have, wherever a command takes it
SHORT = {"--data": "-d", "--out": "-o", "--features": "-f", "--run": "-r", "--config": "-c", "--gene": "-g",
         "--samples": "-s", "--samples-file": "-S", "--help": "-h"}
# a short name -> the long names it may stand for (-s: one sample on sequence/variants, a list elsewhere)
LONG = {short: {long} for long, short in SHORT.items()} | {"-s": {"--sample", "--samples"}}
COMPUTE = {"simulate", "extract", "train", "predict", "benchmark", "demo", "interpret", "score-variants"}


ROOT = typer.main.get_command(app)
COMMANDS = dict(cli_commands(ROOT))
IDS = [" ".join(p) for p in COMMANDS]


PATH_OF = {id(c): p for p, c in COMMANDS.items()}


def _options(cmd):
    """The command's options as the CLI sees them (under gta's context, so -h/--help is there)."""
    ctx = ROOT.make_context("gta", [], resilient_parsing=True)
    group = ROOT
    for name in PATH_OF[id(cmd)]:
        sub = group.commands[name]
        ctx = sub.make_context(name, [], parent=ctx, resilient_parsing=True)
        group = sub
    return [p for p in cmd.get_params(ctx) if p.param_type_name == "option"]


def _is_number(p) -> bool:
    ann = getattr(getattr(p, "type_descriptor", None), "annotation", None)  # typer's own click
    if ann is not None:
        return ann in (int, float)
    return getattr(getattr(p, "type", None), "name", "") in ("integer", "float", "integer range", "float range")


def _names(p) -> set[str]:
    return set(p.opts) | set(p.secondary_opts)


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_option_convention(path):
    cmd = COMMANDS[path]
    opts = _options(cmd)
    names = {n: p for p in opts for n in _names(p)}
    for long, short in SHORT.items():
        if long in names:
            assert short in _names(names[long]), f"gta {' '.join(path)}: {long} must also be {short}"
    for p in opts:  # a short name means the same thing on every command
        for short, longs in LONG.items():
            if short in _names(p):
                assert longs & _names(p), f"gta {' '.join(path)}: {short} is {p.opts}, not {longs}"
    assert "-g" not in _names(names.get("--genes", names["--help"])), "-g is one gene (--gene), never a list"
    if "--device" in names:
        assert names["--device"].default == "auto", f"gta {' '.join(path)}: --device defaults to auto"
    assert "--version" in names
    hidden = [p for p in opts if getattr(p, "hidden", False)]
    assert all(p.help for p in hidden)  # an old spelling says what replaced it
    if path[-1] in COMPUTE:
        assert "--threads" in names, f"gta {' '.join(path)} computes, so it takes --threads"
    outputs = [p for p in opts if p.name in ("out", "output") or "--output" in _names(p)]
    for p in outputs:
        assert {"-o", "--out"} <= _names(p), f"gta {' '.join(path)}: the output option is -o/--out"


def test_the_conventions_reached_every_command():
    assert len(COMMANDS) >= 13
    with_data = {p[-1] for p, c in COMMANDS.items() if any("--data" in _names(o) for o in _options(c))}
    assert {"validate", "extract", "train", "predict", "benchmark", "interpret", "score-variants", "sequence",
            "variants", "prompt"} <= with_data
    with_out = {p[-1] for p, c in COMMANDS.items() if any("-o" in _names(o) for o in _options(c))}
    assert {"simulate", "extract", "train", "predict", "benchmark", "demo", "interpret", "score-variants",
            "sequence", "build"} <= with_out


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=["gta", *IDS])
def test_h_and_version(path, capsys):
    rc, out, err = run_cli([*path, "-h"], capsys)
    assert rc == 0 and "Usage" in out, err
    rc, out, _ = run_cli([*path, "--version"], capsys)
    from gta import __version__

    assert rc == 0 and out.strip() == f"gta {__version__}"


def _one_line_usage_error(rc, out, err, what):
    assert rc == 2, (what, rc, err)
    assert "Traceback" not in err and "Traceback" not in out, what
    assert err.startswith("gta: error: ") and err.count("\n") == 1, (what, err)


def _bad_value(cmd):
    """An option and a value it must refuse: a number option given a word."""
    for p in _options(cmd):
        if _is_number(p) and not p.is_flag:
            return [p.opts[0], "not-a-number"]
    return None


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_usage_errors_are_one_line_exit_2(path, capsys):
    cmd = COMMANDS[path]
    rc, out, err = run_cli([*path, "--no-such-option"], capsys)
    _one_line_usage_error(rc, out, err, "unknown option")
    assert "--no-such-option" in err
    required = [p for p in _options(cmd) if p.required]
    if required:
        rc, out, err = run_cli([*path], capsys)
        _one_line_usage_error(rc, out, err, "missing option")
        assert required[0].opts[0] in err
    bad = _bad_value(cmd)
    if bad is not None:  # given with the required options, so the value is what fails
        filler = [a for p in required for a in (p.opts[0], "x")]
        rc, out, err = run_cli([*path, *filler, *bad], capsys)
        _one_line_usage_error(rc, out, err, f"bad value {bad}")
        assert "not-a-number" in err or bad[0] in err


def test_usage_errors_of_the_app(capsys):
    _one_line_usage_error(*run_cli(["extrct"], capsys), "typo'd command")
    _one_line_usage_error(*run_cli(["sequence", "-d", "x.yaml", "-g", "BETA", "--haplotype", "3"], capsys),
                          "out of range")
    _one_line_usage_error(*run_cli(["annotations", "bulid"], capsys), "typo'd subcommand")
    rc, out, err = run_cli(["extract", "--data"], capsys)  # an option without its value
    _one_line_usage_error(rc, out, err, "option without value")


def test_python_m_gta_maps_usage_errors():
    """The installed entry point path: `python -m gta` (what torchrun -m gta runs) gives the same one line."""
    for argv in (["extract"], ["extract", "--no-such-option"], ["sequence", "-d", "x", "-g", "y", "-H", "3"]):
        proc = subprocess.run([sys.executable, "-m", "gta", *argv], capture_output=True, text=True, timeout=120)
        _one_line_usage_error(proc.returncode, proc.stdout, proc.stderr, argv)
    proc = subprocess.run([sys.executable, "-m", "gta", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("gta ")


def test_old_spellings_still_work_but_are_hidden():
    """`--individuals` (extract: a value; predict: a flag) stays for old scripts, out of the help."""
    for name in ("extract", "predict"):
        cmd = COMMANDS[(name,)]
        old = [p for p in _options(cmd) if "--individuals" in _names(p)]
        assert old and old[0].hidden
        res = CliRunner().invoke(app, [name, "-h"])
        assert "--individuals" not in res.output and "--samples" in res.output


CONFIGURED = [p for p, c in COMMANDS.items() if any("--config" in _names(o) for o in _options(c))]


@pytest.mark.parametrize("path", CONFIGURED, ids=[" ".join(p) for p in CONFIGURED])
def test_a_missing_or_malformed_config_is_one_line_naming_the_file(path, capsys, tmp_path):
    """Read before anything else, so the other options may be fillers; a YAML error names its line."""
    required = [a for p in _options(COMMANDS[path]) if p.required for a in (p.opts[0], str(tmp_path / "x"))]
    missing = tmp_path / "missing.yaml"
    rc, out, err = run_cli([*path, *required, "--config", str(missing)], capsys)
    _one_line_usage_error(rc, out, err, "missing config")
    assert "missing.yaml" in err and "not found" in err, err
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nmodel: [1, 2\nlr: 3\n")
    rc, out, err = run_cli([*path, *required, "--config", str(bad)], capsys)
    _one_line_usage_error(rc, out, err, "malformed config")
    assert "bad.yaml:" in err and "not valid YAML" in err, err


def test_every_config_option_is_covered():
    assert {("simulate",), ("train",), ("benchmark",), ("prompt",)} <= set(CONFIGURED), CONFIGURED


def test_config_values_of_the_wrong_type_are_named(tmp_path):
    """Training, model and benchmark configs share one type rule (gta.yaml_input.typed_fields)."""
    from gta.errors import GtaInputError
    from gta.evaluate.benchmark import BenchmarkConfig

    path = tmp_path / "b.yaml"
    path.write_text("n_boot: many\n")
    with pytest.raises(GtaInputError, match="n_boot must be a whole number, got 'many'"):
        BenchmarkConfig.load(path)
    path.write_text("n_boot: 20\nseed: 1\nenformer_track: null\n")
    assert (BenchmarkConfig.load(path).n_boot, BenchmarkConfig.load(path).seed) == (20, 1)
    # mapping and list fields: a container is not checked as its parameters' type ("gta must be text" was
    # raised for the mapping that benchmarks/bench_llm_verdict.py writes), but must be a mapping or a list
    path.write_text("gta: {seed: 1}\nmodels: [GTA, GTA no LLM]\ninterpret: {n_genes: 0}\n")
    cfg = BenchmarkConfig.load(path)
    assert (cfg.gta, cfg.models, cfg.interpret["n_genes"]) == ({"seed": 1}, ["GTA", "GTA no LLM"], 0)
    for text, message in (("gta: 5\n", "gta must be a mapping"), ("models: GTA\n", "models must be a list"),
                          # the nested sections are checked on reading, not after the trainings that precede their use
                          ("gta: {sed: 1}\n", r"section gta: unknown training config key\(s\) \['sed'\]"),
                          ("gta: {max_epochs: many}\n", "section gta: max_epochs must be a whole number"),
                          ("interpret: {n_genes: many}\n", "interpret.n_genes must be a whole number, got 'many'"),
                          ("interpret: {genes: 5}\n", r"unknown interpret key\(s\) \['genes'\]"),
                          ("n_bot: 5\n", r"unknown key\(s\) \['n_bot'\]"),
                          ("interpret: {models: [GTA, Foo]}\n", r"unknown interpret model\(s\) \['Foo'\]"),
                          ("enformer_arch: {crop: 5}\n", r"unknown enformer_arch key\(s\) \['crop'\]"),
                          ("enformer_arch: {progress: false}\n", r"unknown enformer_arch key\(s\) \['progress'\]"),
                          ("enformer_arch: {crop_bp: big}\n", "enformer_arch.crop_bp must be a whole number")):
        path.write_text(text)
        with pytest.raises(GtaInputError, match=message):
            BenchmarkConfig.load(path)
    path.write_text("enformer_arch: {crop_bp: null, max_steps: 10}\ngta: {seed: 2, model: {llm_layers: 1}}\n")
    assert BenchmarkConfig.load(path).enformer_arch == {"crop_bp": None, "max_steps": 10}
