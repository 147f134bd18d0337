"""results.json round trip, recomputation from predictions, and the report's numbers against recomputed ones."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gta.errors import GtaInputError
from gta.evaluate.report import MODEL_FIELDS, fmt, lookup, render_report
from gta.evaluate.results import (
    ModelResult,
    Results,
    read_results,
    recompute_metrics,
    verify_results,
    write_results,
)
from gta.evaluate.synthetic import write_synthetic_benchmark

ROOT = Path(__file__).resolve().parents[1]
KIND = {path: kind for path, kind in MODEL_FIELDS.values()}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    results_json, pred_dir = write_synthetic_benchmark(folder, n_genes=100, n_samples=30, n_boot=100)
    html = render_report(results_json, pred_dir, folder / "report.html")
    return folder, results_json, pred_dir, html


def shown_numbers(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-key="([^"]+)">([^<]*)<', page))


def test_results_round_trip_and_strict_json(tmp_path):
    res = Results(models=[ModelResult(name="m", metrics={"cross_gene": {"spearman": float("nan")}}),
                          ModelResult(name="skip", status="not run", reason="no GPU")])
    p = write_results(res, tmp_path / "results.json")
    text = p.read_text()
    assert "NaN" not in text and json.loads(text)["models"][0]["metrics"]["cross_gene"]["spearman"] is None
    back = read_results(p)
    assert back.model("skip").reason == "no GPU" and back.dataset == res.dataset and back.settings == res.settings


def test_read_results_errors(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text('{"schema_version": 1,\n "models": [}')
    with pytest.raises(GtaInputError, match=r"results.json:2"):
        read_results(bad)
    bad.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(GtaInputError, match="schema_version"):
        read_results(bad)
    with pytest.raises(GtaInputError, match="not found"):
        read_results(tmp_path / "missing.json")


def test_results_json_recomputes_from_predictions(bench):
    folder, results_json, pred_dir, _ = bench
    assert verify_results(results_json, pred_dir) == []
    # tampering with one stored number is caught
    d = json.loads(results_json.read_text())
    d["models"][0]["metrics"]["cross_gene"]["spearman"] += 0.01
    tampered = folder / "tampered.json"
    tampered.write_text(json.dumps(d))
    problems = verify_results(tampered, pred_dir)
    assert len(problems) == 1 and "cross_gene.spearman" in problems[0]


def test_report_numbers_equal_recomputed_metrics(bench):
    _, results_json, pred_dir, html = bench
    res = read_results(results_json)
    recomputed = recompute_metrics(pred_dir, res.settings)
    shown = shown_numbers(html.read_text())
    checked = 0
    for key, text in shown.items():
        owner, path = key.split("|", 1)
        if owner in ("noise_ceiling", "dataset", "settings"):
            value = lookup(getattr(res, owner), path)
            kind = "r" if owner == "noise_ceiling" else "int"
            assert text == fmt(value, kind), key
            continue
        m = res.model(owner)
        if path.startswith("@"):
            assert text == fmt(getattr(m, path[1:]), {"@wall_time_s": "s", "@peak_memory_mb": "mb"}[path]), key
            continue
        value = lookup(recomputed[m.table_key], path)
        assert text == fmt(value, KIND[path]), key
        checked += 1
    ok = [m for m in res.models if m.status == "ok"]
    assert checked >= len(ok) * len(MODEL_FIELDS)  # every model number of every run model is on the page
    assert shown["GTA|cross_gene.spearman"] != "—" and shown["ElasticNet eQTL|cross_gene.spearman"] == "—"
    assert "noise_ceiling|cross_gene_spearman" in shown


def test_report_is_self_contained_with_not_run_rows(bench):
    folder, _, _, html = bench
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 4
    pngs = sorted((folder / "plots").glob("*.png"))  # the same figures as files, for slides and papers
    assert len(pngs) == 4 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert not re.search(r'src="(?!data:)', page) and "<link" not in page
    assert "not run" in page and "synthetic example of a skipped model" in page
    md = (folder / "results.md").read_text()
    shown = shown_numbers(page)
    assert shown["GTA|cross_gene.spearman"] in md.split("| GTA |")[1].splitlines()[0]
    assert "Enformer-arch" in md and "not run" in md


def test_report_numbers_follow_results_json(bench, tmp_path):
    """A number changed in results.json changes the page: nothing is typed into the template."""
    folder, results_json, pred_dir, _ = bench
    d = json.loads(results_json.read_text())
    d["models"][0]["metrics"]["cross_gene"]["spearman"] = 0.123456
    edited = tmp_path / "results.json"
    edited.write_text(json.dumps(d))
    page = render_report(edited, pred_dir, tmp_path / "r.html", markdown=False).read_text()
    assert shown_numbers(page)[f"{d['models'][0]['name']}|cross_gene.spearman"] == "0.123"


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="chromium not installed (apt-get install -y chromium): screenshot check skipped")
def test_screenshot_is_not_blank(bench, tmp_path):
    from PIL import Image

    _, _, _, html = bench
    out = tmp_path / "shot.png"
    subprocess.run(["bash", str(ROOT / "scripts" / "screenshot_report.sh"), str(html), str(out), "1400,1600"],
                   check=True, timeout=120, capture_output=True)
    img = np.asarray(Image.open(out).convert("L"), dtype=float)
    assert img.shape == (1600, 1400)
    dark = (img < 128).mean()
    assert img.std() > 20 and 0.01 < dark < 0.6  # text, table and figures drawn, not a blank page
