"""scripts/update_readme_results.py: a summary trained at other code than the acceptance table is flagged."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "update_readme_results.py"


def _script():
    spec = importlib.util.spec_from_file_location("update_readme_results", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _curve(tmp_path: Path, seed0: float) -> Path:
    point = {"n_genes": 2500, "genes_by_split": {"test": 501}, "noise_ceiling": 0.917,
             "models": {"GTA": {"seeds": [seed0, 0.6], "mean": (seed0 + 0.6) / 2, "min": 0.6, "max": seed0}}}
    path = tmp_path / "learning_curve.json"
    path.write_text(json.dumps({"commit": "abc1234", "date": "d", "gta_settings": "defaults", "seeds": [0, 1],
                                "sim_seed": 0, "points": [point]}))
    return path


def test_learning_curve_line_is_flagged_when_its_seed_0_is_not_the_tables_gta(tmp_path, monkeypatch):
    mod = _script()
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    stale = mod.curve_lines(_curve(tmp_path, 0.663), gta=0.692, n_genes=2500)
    assert any("Not the table's model" in line and "0.663" in line and "0.692" in line for line in stale)
    same = mod.curve_lines(_curve(tmp_path, 0.692), gta=0.692, n_genes=2500)
    assert not any("Not the table's model" in line for line in same)
    other_size = mod.curve_lines(_curve(tmp_path, 0.663), gta=0.692, n_genes=1000)  # another data set: no claim
    assert not any("Not the table's model" in line for line in other_size)
    assert "GTA 0.631 [0.600, 0.663]" in stale[0]
