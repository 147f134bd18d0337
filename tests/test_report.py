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


# ---- near-constant predictions, notes, axis labels, the splits sentence -----------------------------------------
@pytest.fixture(scope="module")
def flat_bench(tmp_path_factory):
    """A good model and one that predicts (almost) one value for every gene and person, on real result files."""
    from gta.evaluate.results import DatasetInfo, MetricSettings, record_model
    from gta.evaluate.seq_baseline import FitReport
    from gta.evaluate.synthetic import prediction_table, synthetic_truth

    folder = tmp_path_factory.mktemp("flat")
    pred_dir = folder / "predictions"
    t = synthetic_truth(n_genes=80, n_samples=20, seed=1)
    rng = np.random.default_rng(2)
    good_gene = t["mean_signal"] + rng.normal(0, 0.3, 80)
    flat_gene = 5.0 + 0.01 * rng.normal(0, 1, 80)  # sd ratio about 0.01
    by_split = {k: int((t["split"] == k).sum()) for k in ("train", "val", "test")}
    res = Results(dataset=DatasetInfo(name="flat", n_genes=80, n_samples=20, expression_transform="log1p",
                                      genes_by_split=by_split,
                                      samples_by_split={"train": 0, "test": 6}),
                  settings=MetricSettings(n_boot=50))
    fit = FitReport(epochs_done=3, steps=120, seconds=95.2, stopped_by="time", seconds_per_sequence=0.083,
                    train_len_bp=32768, best_val_loss=0.4123)
    record_model(res, pred_dir, "Good", prediction_table(t, good_gene, good_gene[:, None] + t["geno"]),
                 notes=["run folder: runs/good"])
    record_model(res, pred_dir, "Flat", prediction_table(t, flat_gene, np.repeat(flat_gene[:, None], 20, 1)),
                 notes=["Enformer-arch (central 32 kb)", json.dumps(fit, default=str)])  # as benchmark.py writes it
    results_json = write_results(res, folder / "results.json")
    html = render_report(results_json, pred_dir, folder / "report.html")
    return results_json, pred_dir, html, fit


def _row(page: str, model: str) -> str:
    return next(r for r in page.split("<tr") if f"<b>{model}</b>" in r)


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", fragment))


def test_spread_ratio_is_in_results_json_and_recomputes(flat_bench):
    results_json, pred_dir, _, _ = flat_bench
    res = read_results(results_json)
    good, flat = res.model("Good").metrics["spread"], res.model("Flat").metrics["spread"]
    assert good["rows"] == "gene" and good["split"] == "test" and good["n"] == res.dataset.genes_by_split["test"]
    assert 0.5 < good["sd_ratio"] < 2 and good["near_constant"] is False
    assert flat["sd_ratio"] < 0.05 and flat["near_constant"] is True
    assert flat["sd_ratio"] == pytest.approx(flat["sd_pred"] / flat["sd_true"])
    assert verify_results(results_json, pred_dir) == []  # recomputed from the saved predictions


def test_spread_of_a_table_without_gene_rows_uses_individual_rows():
    from gta.evaluate.results import prediction_spread
    from gta.evaluate.synthetic import prediction_table, synthetic_truth

    t = synthetic_truth(n_genes=40, n_samples=10, seed=3)
    s = prediction_spread(prediction_table(t, None, 0.5 * t["ind_obs"]))
    assert s["rows"] == "individual" and s["n"] > 0 and s["sd_ratio"] == pytest.approx(0.5, rel=0.05)


def test_near_constant_model_is_flagged_in_table_footnote_notes_and_markdown(flat_bench):
    _, _, html, _ = flat_bench
    page = html.read_text()
    assert "near-constant" in _row(page, "Flat") and "near-constant" not in _row(page, "Good")
    assert "†" in _row(page, "Flat") and "†" not in _row(page, "Good")
    assert '<p class="foot">† Near-constant predictions' in page  # the footnote under the table
    notes = page.split("<h2>Notes</h2>")[1]
    flat_note = next(li for li in notes.split("<li>") if "<b>Flat</b>" in li)
    good_note = next(li for li in notes.split("<li>") if "<b>Good</b>" in li)
    assert "near-constant predictions" in flat_note and "near-constant" not in good_note
    md = (html.parent / "results.md").read_text()
    flat_line = next(line for line in md.splitlines() if line.startswith("| Flat"))
    good_line = next(line for line in md.splitlines() if line.startswith("| Good"))
    assert flat_line.startswith("| Flat † |") and "†" not in good_line
    assert "† Near-constant predictions" in md and "Flagged: Flat." in md


def test_the_spread_column_shows_results_json(flat_bench):
    results_json, _, html, _ = flat_bench
    res = read_results(results_json)
    shown = shown_numbers(html.read_text())
    for name in ("Good", "Flat"):
        assert shown[f"{name}|spread.sd_ratio"] == fmt(res.model(name).metrics["spread"]["sd_ratio"], "ratio")
    assert fmt(0.00912, "ratio") == "0.0091" and fmt(0.987, "ratio") == "0.99"


def test_a_training_report_note_is_a_sentence_not_a_repr(flat_bench):
    from gta.evaluate.report import note_text

    _, _, html, fit = flat_bench
    page = html.read_text()
    assert "FitReport(" not in page
    want = ("Training: trained 3 full epochs (120 steps, 95 s); stopped by the time cap; 0.083 s per sequence "
            "forward + backward at 32,768 bp; best validation loss 0.412.")
    assert want in page
    assert note_text(json.dumps(fit.to_dict())) == want  # the dict form reads the same
    assert note_text("run folder: runs/good") == "run folder: runs/good"  # other notes unchanged


def test_figures_label_their_axes_with_units(flat_bench):
    import matplotlib.pyplot as plt

    from gta.evaluate import plots
    from gta.evaluate.results import load_predictions, model_tables

    results_json, pred_dir, _, _ = flat_bench
    res = read_results(results_json)
    preds = {name: load_predictions(p) for name, p in model_tables(pred_dir).items()}
    fig = plots.scatter_grid(res, {"Good": preds["Good"], "Flat": preds["Flat"]})
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2
    for ax in panels:
        assert ax.get_xlabel() == "observed mean log1p expression"
        assert ax.get_ylabel() == "predicted mean log1p expression"
    assert [ax.get_title() for ax in panels] == ["Good", "Flat (near-constant)"]
    plt.close(fig)
    fig = plots.cross_individual_hists(res)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert panels and all(ax.get_ylabel() == "genes" and ax.get_xlabel() for ax in panels)
    plt.close(fig)
    res.dataset.expression_transform = None  # an older results.json: the units are said to be the table's
    assert plots.scatter_axis_labels(res)[0] == "observed mean expression, units of the expression table"


def test_the_individuals_by_split_line_says_what_it_means(flat_bench):
    _, _, html, _ = flat_bench
    text = _text(html.read_text())
    assert ("individuals with personal haplotypes in the feature store, by split: train 0, test 6. Training used "
            "reference windows only: 0 training individuals have personal haplotypes in the store; 6 held-out "
            "individuals are predicted from their own haplotypes.") in text
    assert "Training used reference windows only" in (html.parent / "results.md").read_text()
