"""``results.json``: the schema of benchmark results, an atomic writer, a validating reader, and the recomputation
of every metric from the saved prediction tables.

Layout of a predictions folder (what ``recompute_metrics`` reads): one table per model, either
``NAME.parquet`` or ``NAME/*.parquet`` (a run folder's ``predictions/{split}.parquet`` works too, as
``NAME/predictions/*.parquet``). ``_genes.parquet`` (``gene_id, distal_share``) is optional side information,
not a model. The metric settings (bootstrap size, seed, ``min_samples``, distal bands) are stored in
``results.json`` so the recomputation uses the same ones.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from gta.atomic import atomic_write_text
from gta.errors import GtaInputError
from gta.evaluate import metrics as M

SCHEMA_VERSION = 1
GENES_FILE = "_genes.parquet"
STATUSES = ("ok", "not run", "failed")
NEAR_CONSTANT = 0.1  # sd(pred) / sd(true) on the test split below this: the predictions are close to a constant


@dataclass
class MetricSettings:
    n_boot: int = 1000
    seed: int = 0
    min_samples: int = 5
    sample_split: str | None = "test"
    distal_bins: list[float] = field(default_factory=lambda: list(M.DEFAULT_DISTAL_BINS))


@dataclass
class DatasetInfo:
    name: str = "dataset"
    hash: str | None = None
    description: str = ""
    n_genes: int = 0
    n_samples: int = 0
    genes_by_split: dict[str, int] = field(default_factory=dict)
    samples_by_split: dict[str, int] = field(default_factory=dict)
    simulated: bool = False
    # the manifest's expression_transform (none | log1p | ...): the units of y_true / y_pred; None when not recorded
    expression_transform: str | None = None


@dataclass
class ModelResult:
    """One row of the benchmark. ``metrics`` holds ``cross_gene``, ``cross_individual``, ``by_distal_share``."""

    name: str
    kind: str = "baseline"  # gta | ablation | baseline
    status: str = "ok"  # ok | not run | failed
    reason: str | None = None
    description: str = ""
    predictions: str | None = None  # file or folder name inside the predictions folder
    metrics: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float | None = None
    peak_memory_mb: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def table_key(self) -> str:
        """Name of this model's table in the predictions folder (as ``model_tables`` lists it)."""
        return Path(self.predictions).stem if self.predictions else self.name


@dataclass
class Results:
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    noise_ceiling: dict[str, Any] = field(default_factory=lambda: {"available": False})
    settings: MetricSettings = field(default_factory=MetricSettings)
    models: list[ModelResult] = field(default_factory=list)
    # simulated data: per GTA-family model, AUPRC of importance methods for the true elements, variant effects
    interpretation: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    gta_version: str = ""
    schema_version: int = SCHEMA_VERSION

    def model(self, name: str) -> ModelResult:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers, tuples become lists."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_results(results: Results, path: str | Path) -> Path:
    """Write ``results.json`` atomically (strict JSON: no NaN)."""
    if not results.gta_version:
        try:
            from importlib.metadata import version

            results.gta_version = version("gta")
        except Exception:  # noqa: BLE001 - version is informative only
            results.gta_version = "unknown"
    for m in results.models:
        if m.status not in STATUSES:
            raise ValueError(f"model {m.name}: status {m.status!r} not in {STATUSES}")
    text = json.dumps(_clean(asdict(results)), indent=1, allow_nan=False)
    atomic_write_text(path, text + "\n")
    return Path(path)


def _build(cls, d: dict, path: Path):
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise GtaInputError(f"unknown {cls.__name__} fields {sorted(unknown)}", path=path,
                            hint="written by a newer gta? re-run gta benchmark")
    return cls(**d)


def read_results(path: str | Path) -> Results:
    """Read and check ``results.json``."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise GtaInputError("results file not found", path=path, hint="run gta benchmark first") from e
    except json.JSONDecodeError as e:
        raise GtaInputError(f"not valid JSON: {e.msg}", path=path, line=e.lineno) from e
    if d.get("schema_version") != SCHEMA_VERSION:
        raise GtaInputError(f"schema_version {d.get('schema_version')!r}, expected {SCHEMA_VERSION}", path=path)
    d["dataset"] = _build(DatasetInfo, d.get("dataset", {}), path)
    d["settings"] = _build(MetricSettings, d.get("settings", {}), path)
    d["models"] = [_build(ModelResult, m, path) for m in d.get("models", [])]
    res = _build(Results, d, path)
    for m in res.models:
        if m.status not in STATUSES:
            raise GtaInputError(f"model {m.name}: status {m.status!r} not in {STATUSES}", path=path)
    return res


def prediction_spread(df: pd.DataFrame, split: str = "test", sample_split: str | None = "test") -> dict[str, Any]:
    """How much the predictions of ``split`` vary compared with the targets: ``sd_ratio = sd(y_pred) / sd(y_true)``.

    Over the gene-level rows of the split's genes (one value per gene); a table without gene-level rows (a per-gene
    eQTL model) is measured on its individual rows of those genes (held-out individuals when ``sample_split``).
    A ratio near 0 means the model predicts nearly the same value for everything: its correlations then rest on
    tiny differences. ``near_constant`` is ``sd_ratio < NEAR_CONSTANT``.
    """
    df = M.check_table(df)
    rows, g = "gene", M.gene_rows(df, split)
    if not len(g):
        ind = M.individual_rows(df, sample_split)
        rows, g = "individual", ind[ind["split"] == split]
    out: dict[str, Any] = {"split": split, "rows": rows, "n": int(len(g)), "sd_true": None, "sd_pred": None,
                           "sd_ratio": None, "near_constant": None}
    if len(g) < 2:
        return out
    sd_true, sd_pred = float(g["y_true"].std(ddof=0)), float(g["y_pred"].std(ddof=0))
    out.update(sd_true=sd_true, sd_pred=sd_pred)
    if sd_true > 0 and math.isfinite(sd_pred):
        out["sd_ratio"] = sd_pred / sd_true
        out["near_constant"] = bool(out["sd_ratio"] < NEAR_CONSTANT)
    return out


def model_metrics(df: pd.DataFrame, settings: MetricSettings, distal_share: pd.Series | None = None
                  ) -> dict[str, Any]:
    """All metrics of one model's prediction table: the one function behind results.json and its recomputation."""
    out: dict[str, Any] = {
        "cross_gene": M.cross_gene(df, n_boot=settings.n_boot, seed=settings.seed),
        "cross_individual": M.cross_individual(df, min_samples=settings.min_samples,
                                               sample_split=settings.sample_split),
        "spread": prediction_spread(df, sample_split=settings.sample_split),
        "by_distal_share": None,
    }
    if distal_share is not None:
        out["by_distal_share"] = M.by_distal_share(df, distal_share, bins=settings.distal_bins,
                                                   min_samples=settings.min_samples,
                                                   sample_split=settings.sample_split)
    return _clean(out)


def model_tables(predictions_dir: str | Path) -> dict[str, Path]:
    """Model name -> its parquet file or folder, in a predictions folder."""
    root = Path(predictions_dir)
    if not root.is_dir():
        raise GtaInputError("predictions folder not found", path=root)
    out = {}
    for p in sorted(root.iterdir()):
        if p.name.startswith((".", "_")):
            continue
        is_dir_table = p.is_dir() and (any(p.glob("*.parquet")) or any(p.glob("predictions/*.parquet")))
        if p.suffix == ".parquet" or is_dir_table:
            out[p.stem if p.is_file() else p.name] = p
    return out


def load_predictions(path: str | Path) -> pd.DataFrame:
    """A model's prediction table from a parquet file or a folder of them (concatenated), checked."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.parquet")) or sorted(p.glob("predictions/*.parquet"))
        if not files:
            raise GtaInputError("no parquet prediction tables in folder", path=p)
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    else:
        df = pd.read_parquet(p)
    return M.check_table(df, path=p)


def load_distal_share(predictions_dir: str | Path) -> pd.Series | None:
    f = Path(predictions_dir) / GENES_FILE
    if not f.exists():
        return None
    g = pd.read_parquet(f)
    if "distal_share" not in g.columns:
        return None
    return g.set_index(g["gene_id"].astype(str))["distal_share"].astype(float)


def recompute_metrics(predictions_dir: str | Path, settings: MetricSettings | None = None) -> dict[str, dict]:
    """Model name -> metrics, recomputed from the saved predictions (and ``_genes.parquet`` if present)."""
    settings = settings or MetricSettings()
    share = load_distal_share(predictions_dir)
    return {name: model_metrics(load_predictions(p), settings, share)
            for name, p in model_tables(predictions_dir).items()}


def verify_results(results_json: str | Path, predictions_dir: str | Path, tol: float = 1e-9) -> list[str]:
    """Differences between results.json's metrics and the ones recomputed from the predictions (empty: agree)."""
    res = read_results(results_json)
    recomputed = recompute_metrics(predictions_dir, res.settings)
    problems = []
    for m in res.models:
        if m.status != "ok":
            continue
        if m.table_key not in recomputed:
            problems.append(f"{m.name}: no predictions saved under {m.table_key!r}")
            continue
        problems += [f"{m.name}: {d}" for d in _diff(m.metrics, recomputed[m.table_key], "", tol)]
    return problems


def _diff(a: Any, b: Any, where: str, tol: float) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return [d for k in sorted(keys) for d in _diff(a.get(k), b.get(k), f"{where}.{k}", tol)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{where}[{i}]", tol)]
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return [] if abs(a - b) <= tol * max(1.0, abs(b)) else [f"{where}: {a} != {b}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def run_slug(name: str) -> str:
    """The folder or file name of a model's outputs in a benchmark folder (`runs/NAME`, `predictions/NAME.parquet`)."""
    s = "".join(c if c.isalnum() or c in "-." else "_" for c in name).strip("._")
    return s or "model"


def record_model(
    results: Results,
    predictions_dir: str | Path,
    name: str,
    predictions: pd.DataFrame,
    kind: str = "baseline",
    description: str = "",
    wall_time_s: float | None = None,
    peak_memory_mb: float | None = None,
    notes: list[str] | None = None,
) -> ModelResult:
    """Save a model's prediction table under ``predictions_dir`` and add its metrics to ``results``.

    The distal share is read from ``predictions_dir/_genes.parquet`` when present (write it first, with
    ``write_gene_info``), exactly as ``recompute_metrics`` will.
    """
    from gta.atomic import atomic_path

    df = M.check_table(predictions)
    file = run_slug(name) + ".parquet"
    with atomic_path(Path(predictions_dir) / file) as tmp:
        df.to_parquet(tmp, index=False)
    m = ModelResult(name=name, kind=kind, description=description, predictions=file,
                    metrics=model_metrics(df, results.settings, load_distal_share(predictions_dir)),
                    wall_time_s=wall_time_s, peak_memory_mb=peak_memory_mb, notes=list(notes or []))
    results.models = [x for x in results.models if x.name != name] + [m]
    return m


def record_not_run(results: Results, name: str, reason: str, kind: str = "baseline", description: str = ""
                   ) -> ModelResult:
    """Add a "not run" row with its reason."""
    m = ModelResult(name=name, kind=kind, status="not run", reason=reason, description=description)
    results.models = [x for x in results.models if x.name != name] + [m]
    return m


def write_gene_info(predictions_dir: str | Path, distal_share: pd.Series) -> Path:
    """Write ``_genes.parquet`` (``gene_id, distal_share``) beside the predictions."""
    from gta.atomic import atomic_path

    path = Path(predictions_dir) / GENES_FILE
    t = pd.DataFrame({"gene_id": distal_share.index.astype(str), "distal_share": distal_share.to_numpy(float)})
    with atomic_path(path) as tmp:
        t.to_parquet(tmp, index=False)
    return path
