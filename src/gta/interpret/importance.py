"""Which bins of the input drive a GTA prediction: attention, gradient x input and occlusion.

Axis legend: b = batch, n = bins, f = features, p = patches (= sequence tokens the LLM reads), t = targets,
h = heads, s = keys (prompt + tokens).

* **attention**: the head pools the LLM's hidden states with weights ``pool [b, p]``; each LLM layer's attention
  (heads averaged) is rolled out (Abnar & Zuidema 2020: ``A' = (A + I) / 2``, ``R = A'_L ... A'_1``) and the
  pooled readout is traced back to the aligned tokens: ``score = pool @ R``. Causal attention means prompt
  positions never attend to sequence tokens, so only the token-by-token block of each map matters; the mass that
  flows to the prompt is what the tokens do not get. Token ``i`` is the cross-attention output whose query is
  patch ``i`` (the prototypes are keys and values), so token scores are patch scores, spread over the patch's bins.
  ``mode="last"`` uses the last layer alone, ``mode="pool"`` the head's pooling weights alone.
* **gradxinput**: gradient of the prediction with respect to the *normalised* features times those features,
  summed over features; the baseline is the training-set mean (zero after normalisation), so for a linear model
  the bins sum to ``f(x) - f(mean)``.
* **occlusion**: each window of bins (default: the model's patches) is set to the training-set mean feature and
  the prediction's drop ``f(x) - f(x occluded)`` is that window's importance; a bin covered by several windows
  gets their mean.

All three return float arrays ``[b, n]``; gradient and occlusion scores are in the model's output units.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

METHODS = ("attention", "gradxinput", "occlusion")
ATTENTION_MODES = ("rollout", "last", "pool")


def patch_windows(model) -> list[tuple[int, int]]:
    """Bin range [start, end) of each sequence token (the patches and the promoter token), clipped to the model's
    bins."""
    return [(int(a), min(int(b), model.n_bins)) for a, b in model.positions().tolist()]


def windows_to_bins(scores: np.ndarray, windows: Sequence[tuple[int, int]], n_bins: int) -> np.ndarray:
    """[b, w] window scores -> [b, n] per-bin scores: each bin gets the mean score of the windows covering it."""
    scores = np.asarray(scores, dtype=np.float64)
    total = np.zeros((scores.shape[0], n_bins))
    count = np.zeros(n_bins)
    for k, (a, b) in enumerate(windows):
        total[:, a:b] += scores[:, k : k + 1]
        count[a:b] += 1
    return total / np.maximum(count, 1)


def _prompts(model, prompts: Sequence[str] | None, batch: int) -> list[str] | None:
    if not model.cfg.use_prompt:
        return None
    if prompts is None or len(prompts) != batch:
        got = None if prompts is None else len(prompts)
        raise ValueError(f"the model reads a prompt per row: need {batch}, got {got}")
    return list(prompts)


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _as_tensor(model, features) -> Tensor:
    x = torch.as_tensor(np.asarray(features, dtype=np.float32)) if not isinstance(features, Tensor) else features
    return x.to(_device(model), torch.float32)


# ---- attention ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def capture_llm_attention(llm) -> Iterator[list[Tensor]]:
    """Within the block, every LLM layer's attention weights ``[b, h, q, s]`` are appended to the yielded list
    (eager attention is switched on for the block: SDPA does not return weights)."""
    hf = llm.hf
    before = hf.config._attn_implementation
    maps: list[Tensor] = []

    def hook(_module, _args, output) -> None:
        if isinstance(output, tuple) and len(output) > 1 and output[1] is not None:
            maps.append(output[1].detach())

    hooks = [layer.self_attn.register_forward_hook(hook) for layer in hf.layers]
    hf.set_attn_implementation("eager")
    try:
        yield maps
    finally:
        for h in hooks:
            h.remove()
        hf.set_attn_implementation(before)


def attention_maps(model, features, prompts: Sequence[str] | None = None) -> dict[str, object]:
    """One forward pass: ``prediction [b, t]``, ``pool [b, p]`` (head pooling), ``alignment [b, h, p, k]``
    (patch -> prototype cross-attention; None for linear alignment) and ``llm``: per layer ``[b, h, p, s]``, the
    rows of the sequence tokens (keys s = prompt + tokens; empty for the scratch backbone)."""
    x = _as_tensor(model, features)
    prompts = _prompts(model, prompts, len(x))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            llm_maps: list[Tensor] = []
            if model.scratch is None:
                if prompts and model.cfg.prefix_cache:
                    for p in dict.fromkeys(prompts):
                        model.llm.encode_prefix(p)  # cached before capturing: only the token pass is recorded
                with capture_llm_attention(model.llm) as maps:
                    y, att = model(x, prompts, return_attention=True)
                llm_maps = [m[:, :, -model.n_tokens :, :].float() for m in maps[-model.llm.n_layers :]]
            else:
                y, att = model(x, prompts, return_attention=True)
    finally:
        model.train(was_training)
    return {"prediction": y.float(), "pool": att["pool"].float(), "alignment": att["alignment"], "llm": llm_maps}


def rollout(blocks: Sequence[Tensor], pool: Tensor, mode: str = "rollout") -> Tensor:
    """Token scores ``[b, p]`` from the head's pooling ``pool [b, p]`` and per-layer token-to-token attention
    ``[b, p, p]`` (heads averaged); see the module docstring."""
    if mode not in ATTENTION_MODES:
        raise ValueError(f"attention mode {mode!r}: choose one of {', '.join(ATTENTION_MODES)}")
    if mode == "pool" or not blocks:
        return pool
    if mode == "last":
        return torch.einsum("bi,bij->bj", pool, blocks[-1])
    eye = torch.eye(pool.shape[1], device=pool.device, dtype=pool.dtype)
    r = eye.expand_as(blocks[0]).clone()
    for a in blocks:
        r = (0.5 * a + 0.5 * eye) @ r  # [b, p, p]
    return torch.einsum("bi,bij->bj", pool, r)


def attention_importance(model, features, prompts: Sequence[str] | None = None, mode: str = "rollout") -> np.ndarray:
    """[b, n] attention importance (non-negative; the sum over patches is the share of the readout that reaches
    the sequence tokens rather than the prompt)."""
    maps = attention_maps(model, features, prompts)
    t = model.n_tokens
    blocks = [m.mean(dim=1)[:, :, -t:] for m in maps["llm"]]  # [b, p, p] token-to-token
    scores = rollout(blocks, maps["pool"], mode)
    return windows_to_bins(scores.cpu().numpy(), patch_windows(model), model.n_bins)


# ---- gradient x input --------------------------------------------------------------------------------------------
def grad_x_input(f: Callable[[Tensor], Tensor], x: Tensor, baseline: Tensor | float = 0.0) -> Tensor:
    """``grad f(x) * (x - baseline)`` for ``f: [b, ...] -> [b]``, same shape as ``x``."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = f(x)
        (grad,) = torch.autograd.grad(y.sum(), x)
    return (grad * (x - baseline)).detach()


def gradxinput_importance(model, features, prompts: Sequence[str] | None = None, target: int = 0) -> np.ndarray:
    """[b, n] gradient x normalised input, summed over features (model output units)."""
    x = _as_tensor(model, features)
    prompts = _prompts(model, prompts, len(x))
    mean, std = model.feat_mean, model.feat_std
    z = (x - mean) / std  # [b, n, f], what the model sees after normalisation

    def f(z_: Tensor) -> Tensor:
        return model(z_ * std + mean, prompts)[:, target].float()

    was_training = model.training
    model.eval()
    try:
        gxi = grad_x_input(f, z)
    finally:
        model.train(was_training)
    return gxi.sum(dim=-1).double().cpu().numpy()


# ---- occlusion ---------------------------------------------------------------------------------------------------
def occlusion(f: Callable[[Tensor], Tensor], x: Tensor, windows: Sequence[tuple[int, int]], baseline: Tensor,
              batch_size: int = 16) -> Tensor:
    """``f(x) - f(x with bins [a, b) set to baseline)`` for one input ``x [n, f]`` and each window: ``[w]``.

    The unoccluded input rides along as row 0 of every batch, so batch-size-dependent rounding cancels and an
    occlusion that changes nothing the model sees scores exactly 0."""
    with torch.no_grad():
        out = []
        for s in range(0, len(windows), batch_size):
            chunk = windows[s : s + batch_size]
            xs = x[None].repeat(len(chunk) + 1, 1, 1)
            for k, (a, b) in enumerate(chunk, start=1):
                xs[k, a:b] = baseline
            y = f(xs)
            out.append(y[0] - y[1:])
    return torch.cat(out) if out else x.new_zeros(0)


def occlusion_importance(model, features, prompts: Sequence[str] | None = None, target: int = 0,
                         window: int | None = None, stride: int | None = None, batch_size: int = 16) -> np.ndarray:
    """[b, n] prediction drop when a window of bins is replaced by the training-set mean feature (zero after
    normalisation). Default windows: the model's patches; ``window``/``stride`` in bins otherwise."""
    x = _as_tensor(model, features)
    prompts = _prompts(model, prompts, len(x))
    if window is None:
        windows = patch_windows(model)
    else:
        step = stride or window
        windows = [(a, min(a + window, model.n_bins)) for a in range(0, model.n_bins, step)]
    was_training = model.training
    model.eval()
    rows = []
    try:
        for b in range(len(x)):
            prompt = prompts[b] if prompts else None

            def f(xs: Tensor, prompt=prompt) -> Tensor:
                return model(xs, [prompt] * len(xs) if prompt is not None else None)[:, target].float()

            rows.append(occlusion(f, x[b], windows, model.feat_mean, batch_size).double().cpu().numpy())
    finally:
        model.train(was_training)
    return windows_to_bins(np.stack(rows), windows, model.n_bins)


def importance(model, features, prompts: Sequence[str] | None, method: str, attention_mode: str = "rollout",
               target: int = 0, batch_size: int = 16) -> np.ndarray:
    """[b, n] importance by ``method`` (one of :data:`METHODS`)."""
    if method == "attention":
        return attention_importance(model, features, prompts, attention_mode)
    if method == "gradxinput":
        return gradxinput_importance(model, features, prompts, target)
    if method == "occlusion":
        return occlusion_importance(model, features, prompts, target, batch_size=batch_size)
    raise ValueError(f"unknown importance method {method!r}: choose one of {', '.join(METHODS)}")
