"""The lab's cross-individual diagnostics (scripts/cross_individual_decomposition.py, scripts/eqtl_targets.py):
their reconstruction and targets on small cases with a known answer."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fixtures import load_script

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # they import variant_runs from beside themselves
    return load_script("scripts/cross_individual_decomposition.py"), load_script("scripts/eqtl_targets.py")


def test_reconstruction_is_the_log_mean_of_two_haplotypes(scripts):
    decomp, _ = scripts
    truth = pd.DataFrame({"variant_id": ["a", "b", "c"], "gene_id": ["g1", "g1", "g2"]})
    hap = {"a": np.array([[1, 0], [1, 1], [0, 0]]), "b": np.array([[0, 0], [0, 1], [1, 0]]),
           "c": np.array([[0, 1], [0, 0], [1, 1]])}
    out = decomp.reconstruct(np.array([0.5, -1.0, 2.0]), truth, hap, 3)
    h1 = np.array([[0.5, 0.0], [0.5, -0.5], [-1.0, 0.0]])
    np.testing.assert_allclose(out["g1"], np.log(np.exp(h1).mean(axis=1)))
    np.testing.assert_allclose(out["g2"], np.log(np.exp(np.array([[0, 2.0], [0, 0], [2.0, 2.0]])).mean(axis=1)))
    observed = pd.DataFrame({0: [1.0, 0.0], 1: [3.0, 0.0], 2: [2.0, 1.0]}, index=["g1", "g2"])
    # g1: reconstruction ranks [3, 2, 1] against observed [1, 3, 2] (rho -0.5); g2: [2, 1, 3] against tied
    # [1.5, 1.5, 3] (rho 0.866); the median of the two
    assert decomp.median_rho(out, observed, ["g1", "g2"]) == pytest.approx((-0.5 + 0.75 ** 0.5) / 2)
    flat = {"g1": np.zeros(3), "g2": out["g2"]}
    assert decomp.median_rho(flat, observed, ["g1"]) == 0.0  # a reconstruction that does not vary scores 0


def test_cases_swap_the_truth_in_piece_by_piece(scripts):
    decomp, _ = scripts
    pred, effect = np.array([0.2, -0.1, 0.05, 0.0]), np.array([0.4, 0.0, -0.1, 0.0])
    cases = dict(zip(("truth", "run", "causal only", "scaled", "sign", "true causal"),
                     decomp.cases(pred, effect, np.array(["P", "-", "P", "-"])).values(), strict=True))
    np.testing.assert_array_equal(cases["truth"], effect)
    np.testing.assert_array_equal(cases["causal only"], [0.2, 0.0, 0.05, 0.0])
    np.testing.assert_array_equal(cases["sign"], [0.4, -0.1, 0.1, 0.0])  # the run's sign, the true size
    np.testing.assert_array_equal(cases["true causal"], [0.4, -0.1, -0.1, 0.0])
