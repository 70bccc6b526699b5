"""Per-token scores of logits (log-prob of the taken token, entropy, self-certainty), chunked.

The logit rewards need three numbers per response token, never the (G, T, V) logits
themselves. Here they are computed where the logits are (the policy's device), in chunks
of positions and of the vocabulary, with an online (streaming) logsumexp as in flash
attention / TRL's ``entropy_from_logits``: the fp32 temporaries are
``position_chunk x vocab_chunk`` whatever T and V are (V = 262k for Gemma 3).

For logits x over V entries, with m = max x, S = sum exp(x - m) and lse = m + log S:
  log p(token) = x[token] - lse
  entropy      = lse - sum(exp(x - m) * x) / S                (= -sum p log p)
  certainty    = lse - mean(x) - log V                        (= KL(uniform || p), INTUITOR)
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch

SCORES = ("token_logprob", "token_entropy", "token_certainty")
POSITION_CHUNK = 256
VOCAB_CHUNK = 32768


def _score_rows(x: torch.Tensor, tokens: torch.Tensor | None, wanted: frozenset[str], vocab_chunk: int, dtype) -> dict[str, torch.Tensor]:
    """Scores of the rows of x (N, V), streaming over the vocabulary."""
    n, vocab = x.shape
    m = torch.full((n,), -math.inf, dtype=dtype, device=x.device)
    s = torch.zeros((n,), dtype=dtype, device=x.device)
    t = torch.zeros((n,), dtype=dtype, device=x.device)  # sum exp(x - m) * x
    total = torch.zeros((n,), dtype=dtype, device=x.device)  # sum x
    need_t, need_total = "token_entropy" in wanted, "token_certainty" in wanted
    for lo in range(0, vocab, vocab_chunk):
        c = x[:, lo: lo + vocab_chunk].to(dtype)
        new_m = torch.maximum(m, c.max(dim=-1).values)
        # exp(-inf - -inf) would be nan; a row still all -inf has nothing to rescale
        scale = torch.where(torch.isneginf(m), torch.zeros_like(m), torch.exp(m - new_m))
        # rows with no finite logit yet (a chunk masked to -inf) shift by 0: exp(-inf) = 0, not nan
        shift = torch.where(torch.isneginf(new_m), torch.zeros_like(new_m), new_m)
        e = torch.exp(c - shift[:, None])
        s = s * scale + e.sum(dim=-1)
        if need_t:
            # where(): a -inf logit has e = 0, and 0 * -inf would be nan
            t = t * scale + torch.where(e > 0, e * c, torch.zeros((), dtype=dtype, device=x.device)).sum(dim=-1)
        if need_total:
            total = total + c.sum(dim=-1)
        m = new_m
    lse = m + torch.log(s)
    out = {}
    if "token_logprob" in wanted:
        out["token_logprob"] = x.gather(-1, tokens[:, None]).squeeze(-1).to(dtype) - lse
    if need_t:
        out["token_entropy"] = lse - t / s
    if need_total:
        out["token_certainty"] = lse - total / vocab - math.log(vocab)
    return out


@torch.no_grad()
def token_scores(
    logits: torch.Tensor,
    tokens: torch.Tensor | None = None,
    wanted: Iterable[str] = SCORES,
    *,
    position_chunk: int = POSITION_CHUNK,
    vocab_chunk: int = VOCAB_CHUNK,
) -> dict[str, torch.Tensor]:
    """Per-position scores of ``logits`` (..., V); each output has shape ``logits.shape[:-1]``.

    ``tokens`` (same leading shape) are the taken tokens, needed for ``token_logprob`` only.
    Computed in fp32 (fp64 if the logits are fp64) on the logits' device; bf16 logsumexp
    would lose the small differences these scores are made of.
    """
    wanted = frozenset(wanted)
    unknown = wanted - set(SCORES)
    if unknown:
        raise ValueError(f"unknown token scores {sorted(unknown)}; expected some of {SCORES}")
    if "token_logprob" in wanted and (tokens is None or tokens.shape != logits.shape[:-1]):
        raise ValueError("token_logprob needs tokens with the logits' leading shape")
    if logits.dim() < 1 or logits.shape[-1] == 0:
        raise ValueError(f"logits must end in a non-empty vocabulary dimension, got {tuple(logits.shape)}")
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    lead = logits.shape[:-1]
    flat = logits.detach().reshape(-1, logits.shape[-1])
    flat_tokens = tokens.reshape(-1).to(logits.device) if tokens is not None else None
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in wanted}
    for lo in range(0, flat.shape[0], position_chunk):
        rows = _score_rows(
            flat[lo: lo + position_chunk], None if flat_tokens is None else flat_tokens[lo: lo + position_chunk],
            wanted, vocab_chunk, dtype,
        )
        for k, v in rows.items():
            parts[k].append(v)
    empty = torch.zeros((0,), dtype=dtype, device=logits.device)
    return {k: (torch.cat(v) if v else empty).reshape(lead) for k, v in parts.items()}
