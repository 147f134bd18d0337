"""Baselines with a scikit-learn interface (``fit(X, y)`` / ``predict(X)``), CV-tuned and seeded.

- ``RidgeOnBins``: ridge regression on per-bin encoder features ``[genes, bins, d]``.
  ``bins="central"`` flattens the ``2 * central_bins + 1`` bins around the TSS (8 bins of 128 bp ~ 1 kb each
  side). ``bins="all"`` pools the whole window into distance bands from the TSS, upstream and downstream kept
  apart (the TSS bin, then bands of 2, 6, 24, 96 bins and the rest on each side, mean-pooled: 11 bands): with
  896 bins x d features (d = 3,072 for Enformer) and a few hundred genes, flattening every bin gives millions of
  columns for hundreds of rows, whereas 11 bands x d keeps the distance information the question is about at a
  size ridge handles. ``pool="flatten"`` is there for small d. Features are standardised; alpha is picked by efficient
  leave-one-out CV (``RidgeCV``).
- ``RidgeOnMotifHits`` ("Ridge (distance bands)"): per motif, the number of bins whose best site scores at least
  ``hit_frac`` (0.7) of the motif's maximum log-odds, counted in bands of distance |x| from the TSS (0-2, 2-10,
  10-20, 20-35 kb and beyond, both sides together), ``log1p``, then ``RidgeCV``. It needs the motif encoder's
  ``{motif}.max`` features; it is the per-band ridge of ``scripts/promoter_ridge_check.py`` on the store's features,
  the strongest simple model of the simulated benchmark.
- ``ElasticNetEQTL`` (:mod:`gta.train.eqtl`, where the eQTL supervision fits it too): PrediXcan-style per-gene
  elastic net (``l1_ratio=0.5``, k-fold CV) on the dosage matrix (individuals x variants in the window, 0/1/2);
  ``fit_predict_eqtl`` runs it over many genes and returns a prediction table of individual rows.
- ``AnnotationOnly``: the gene's annotation text embedded by the frozen sentence encoder all-MiniLM-L6-v2,
  then ``RidgeCV``. Answers "how much does the prompt alone predict?".
- ``EnformerReadout``: pretrained Enformer's own expression prediction, the paper's comparison: a CAGE track
  (GM12878 by default) summed over the bins around the TSS, ``log1p`` when the track is non-negative (CAGE
  counts), then a linear calibration fitted on training genes (it leaves Spearman unchanged and puts the
  prediction on the expression scale for Pearson). Nothing else is learnt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.train.eqtl import ElasticNetEQTL  # the per-gene model the eQTL supervision fits too

DEFAULT_ALPHAS = tuple(np.logspace(-2, 6, 17))
BAND_EDGES = (1, 3, 9, 33, 129)  # distance (bins) from the TSS where a new band starts, each side


def _check_features(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 3:
        raise GtaInputError(f"features must be [genes, bins, d], got shape {X.shape}")
    return X.astype(np.float32, copy=False)


def distance_bands(n_bins: int, tss_bin: int, edges: Sequence[int] = BAND_EDGES) -> list[tuple[int, int]]:
    """Half-open bin ranges: upstream bands (far to near), the TSS bin, downstream bands (near to far)."""
    up, down = [], []
    lims = [*edges, max(tss_bin, n_bins - tss_bin) + 1]
    for a, b in zip(lims[:-1], lims[1:], strict=True):
        lo, hi = max(tss_bin - b + 1, 0), tss_bin - a + 1
        if hi > lo:
            up.append((lo, hi))
        lo, hi = tss_bin + a, min(tss_bin + b, n_bins)
        if hi > lo:
            down.append((lo, hi))
    return [*reversed(up), (tss_bin, tss_bin + 1), *down]


class _StandardisedRidge:
    """``RidgeCV`` on the standardised columns of ``self.transform(X)``; subclasses define the design matrix."""

    alphas: Sequence[float]

    def transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray):
        self.model_ = make_pipeline(StandardScaler(), RidgeCV(alphas=self.alphas))
        self.model_.fit(self.transform(X), np.asarray(y, float))
        self.alpha_ = float(self.model_[-1].alpha_)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(self.transform(X))


class RidgeOnBins(_StandardisedRidge):
    """Ridge on encoder features around the TSS (``bins="central"``) or over the whole window (``"all"``)."""

    def __init__(
        self,
        bins: str = "central",
        central_bins: int = 8,
        pool: str = "bands",
        tss_bin: int | None = None,
        geometry: Geometry | None = None,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
    ) -> None:
        if bins not in ("central", "all"):
            raise ValueError(f"bins must be 'central' or 'all', got {bins!r}")
        if pool not in ("bands", "mean", "flatten"):
            raise ValueError(f"pool must be 'bands', 'mean' or 'flatten', got {pool!r}")
        self.bins, self.central_bins, self.pool = bins, central_bins, pool
        self.tss_bin, self.geometry, self.alphas = tss_bin, geometry, tuple(alphas)

    def _tss(self, n_bins: int) -> int:
        if self.tss_bin is not None:
            return self.tss_bin
        if self.geometry is not None:
            if n_bins != self.geometry.output_bins:
                raise GtaInputError(f"features have {n_bins} bins, geometry says {self.geometry.output_bins}")
            return self.geometry.tss_bin
        return n_bins // 2

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Design matrix [genes, columns] from features [genes, bins, d]."""
        X = _check_features(X)
        g, n, _ = X.shape
        t = self._tss(n)
        if self.bins == "central":
            lo, hi = max(t - self.central_bins, 0), min(t + self.central_bins + 1, n)
            return X[:, lo:hi].reshape(g, -1)
        if self.pool == "flatten":
            return X.reshape(g, -1)
        if self.pool == "mean":
            return X.mean(axis=1)
        return np.concatenate([X[:, a:b].mean(axis=1) for a, b in distance_bands(n, t)], axis=1)


    def bin_contributions(self, X: np.ndarray) -> np.ndarray:
        """Gradient x input of the fitted linear model per bin, [genes, bins]: each design column's
        ``coef * (value - mean) / scale`` shared out over the bins (and features) it is made of, so a gene's
        contributions sum to its prediction minus the intercept. ``pool="bands"`` or ``bins="central"`` only."""
        X = _check_features(X)
        g, n, d = X.shape
        scaler, ridge = self.model_[0], self.model_[-1]
        w = np.asarray(ridge.coef_, np.float64) / scaler.scale_  # per design column
        t = self._tss(n)
        out = np.zeros((g, n))
        if self.bins == "central":
            lo, hi = max(t - self.central_bins, 0), min(t + self.central_bins + 1, n)
            dev = X[:, lo:hi].reshape(g, -1) - scaler.mean_
            out[:, lo:hi] = (dev * w).reshape(g, hi - lo, d).sum(axis=2)
            return out
        if self.pool != "bands":
            raise ValueError("bin contributions need pool='bands'")
        for j, (a, b) in enumerate(distance_bands(n, t)):
            cols = slice(j * d, (j + 1) * d)
            # column = mean over the band's bins, so bin k carries (x_k - mean_col) / width of it
            dev = X[:, a:b] - scaler.mean_[cols]
            out[:, a:b] = (dev * w[cols]).sum(axis=2) / (b - a)
        return out


HIT_BANDS_BP = (0, 2_000, 10_000, 20_000, 35_000)  # |x| where a new band starts; the last runs to the window's edge


class RidgeOnMotifHits(_StandardisedRidge):
    """Ridge on log1p counts of strong motif sites per distance band (see the module docstring).

    ``thresholds``: per ``{motif}.max`` column of the features (in order), the score a bin must reach to count as a
    site. ``max_columns``: the indices of those columns in the feature axis."""

    def __init__(self, max_columns: Sequence[int], thresholds: Sequence[float], tss_bin: int, bin_bp: int,
                 band_edges_bp: Sequence[int] = HIT_BANDS_BP, alphas: Sequence[float] = tuple(np.logspace(-2, 4, 25))):
        if len(max_columns) != len(thresholds) or not len(max_columns):
            raise ValueError("one threshold per motif max column, at least one")
        self.max_columns, self.thresholds = list(max_columns), np.asarray(thresholds, np.float32)
        self.tss_bin, self.bin_bp, self.band_edges_bp, self.alphas = tss_bin, bin_bp, tuple(band_edges_bp), alphas

    @classmethod
    def for_store(cls, store, hit_frac: float = 0.7) -> RidgeOnMotifHits:
        """From a motif-encoder feature store: its ``.max`` columns and motifs (GtaInputError for another encoder)."""
        from gta.io.jaspar import BACKGROUND, load_motifs

        config = store.attrs.get("encoder_config") or {}
        names = store.feature_names
        cols = [i for i, n in enumerate(names) if n.endswith(".max")]
        if store.attrs.get("encoder") != "motif" or not cols or "motifs" not in config:
            raise GtaInputError("Ridge (distance bands) needs a motif-encoder feature store ({motif}.max features)")
        background = np.asarray(config.get("background") or BACKGROUND, float)
        motifs = {m.name: m for m in load_motifs(config["motifs"])}
        best = [motifs[names[i].removesuffix(".max")].log_odds(background).max(axis=0).sum() for i in cols]
        return cls(cols, [hit_frac * b for b in best], store.geometry.tss_bin, store.geometry.bin_size)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """[genes, bands x motifs]: log1p of the strong-site bins per band."""
        X = _check_features(X)
        hits = X[:, :, self.max_columns] >= self.thresholds  # [g, n, k]
        dist = np.abs(np.arange(X.shape[1]) - self.tss_bin) * self.bin_bp
        edges = [*self.band_edges_bp, np.inf]
        bands = [hits[:, (dist >= a) & (dist < b)].sum(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        return np.log1p(np.concatenate(bands, axis=1).astype(np.float64))



def fit_predict_eqtl(
    dosages: Mapping[str, pd.DataFrame],
    expression: pd.DataFrame,
    train_samples: Sequence[str],
    test_samples: Sequence[str],
    gene_split: Mapping[str, str],
    seed: int = 0,
    progress: bool = True,
    **kwargs,
) -> pd.DataFrame:
    """Per-gene ``ElasticNetEQTL`` over many genes (a progress bar unless ``progress`` is False); a prediction table
    of individual rows.

    ``dosages[gene]``: individuals (index) x variants, 0/1/2; ``expression``: genes (index) x samples.
    Trains on ``train_samples`` and predicts ``train_samples + test_samples`` (``sample_split`` says which).
    No gene-level rows are emitted: a per-gene model's gene mean is the in-sample mean, not a cross-gene test.
    """
    from tqdm.auto import tqdm

    train_samples, test_samples = [str(s) for s in train_samples], [str(s) for s in test_samples]
    rows = []
    for gene in tqdm(list(dosages), desc="eQTL elastic net", unit="gene", leave=False, disable=not progress):
        if gene not in expression.index:
            continue
        d = dosages[gene]
        d.index = d.index.astype(str)
        y = expression.loc[gene]
        model = ElasticNetEQTL(seed=seed, **kwargs).fit(d.loc[train_samples].to_numpy(), y[train_samples])
        for part, samples in (("train", train_samples), ("test", test_samples)):
            pred = model.predict(d.loc[samples].to_numpy())
            for s, yt, yp in zip(samples, y[samples].to_numpy(float), pred, strict=True):
                rows.append((gene, s, "both", gene_split.get(gene, "train"), float(yt), float(yp), part))
    return pd.DataFrame(rows, columns=["gene_id", "sample", "haplotype", "split", "y_true", "y_pred", "sample_split"])


class AnnotationOnly:
    """Ridge on the sentence embedding of each gene's annotation text (no sequence at all).

    ``fit``/``predict`` take a list of texts, or a precomputed embedding matrix [genes, dim].
    """

    def __init__(self, alphas: Sequence[float] = DEFAULT_ALPHAS, batch_size: int = 32) -> None:
        self.alphas, self.batch_size = tuple(alphas), batch_size

    def embed(self, X: Sequence[str] | np.ndarray) -> np.ndarray:
        if isinstance(X, np.ndarray) and X.dtype.kind == "f":
            return X
        from gta.evaluate.annotation_embedding import embed_texts

        return embed_texts(list(X), batch_size=self.batch_size)

    def fit(self, X: Sequence[str] | np.ndarray, y: np.ndarray) -> AnnotationOnly:
        self.model_ = RidgeCV(alphas=self.alphas).fit(self.embed(X), np.asarray(y, float))
        self.alpha_ = float(self.model_.alpha_)
        return self

    def predict(self, X: Sequence[str] | np.ndarray) -> np.ndarray:
        return self.model_.predict(self.embed(X))


class EnformerReadout:
    """A head track of ``[genes, bins, d]`` features (column ``track``) summed over ``tss_bin +/- half_width``."""

    def __init__(self, track: int, tss_bin: int, half_width: int = 1) -> None:
        self.track, self.tss_bin, self.half_width = int(track), int(tss_bin), int(half_width)
        self.log = True
        self.calibration = LinearRegression()

    def score(self, X: np.ndarray) -> np.ndarray:
        """The summed track per gene (``log1p`` of it once ``fit`` has seen only non-negative values)."""
        X = _check_features(X)
        lo, hi = max(self.tss_bin - self.half_width, 0), min(self.tss_bin + self.half_width + 1, X.shape[1])
        if not 0 <= self.track < X.shape[2] or lo >= hi:
            raise GtaInputError(f"track column {self.track} / TSS bins {lo}-{hi} outside features {X.shape}")
        total = X[:, lo:hi, self.track].astype(np.float64).sum(axis=1)
        return np.log1p(np.clip(total, 0, None)) if self.log else total

    def fit(self, X: np.ndarray, y: np.ndarray) -> EnformerReadout:
        X = _check_features(X)
        lo, hi = max(self.tss_bin - self.half_width, 0), self.tss_bin + self.half_width + 1
        self.log = bool((X[:, lo:hi, self.track] >= 0).all())
        self.calibration.fit(self.score(X)[:, None], np.asarray(y, float))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.calibration.predict(self.score(X)[:, None])
