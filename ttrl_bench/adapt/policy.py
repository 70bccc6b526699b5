"""Access to the current policy from inside TRL's reward function (extra votes, token scores).

Composition rather than a GRPOTrainer subclass: the reward object is given two closures
over the trainer after it is built. Both go through what TRL's own rollout uses, so they
stay right under DeepSpeed ZeRO-3 and FSDP (parameters sharded across processes):
``unwrap_model_for_generation`` (gathers ZeRO-3 parameters) and the trainer's
``summon_full_params`` (FSDP).

- Extra votes (votes > samples) come from TRL's rollout sampler itself
  (``GRPOTrainer._generate_single_turn``): the same GenerationConfig as the training
  samples (no checkpoint ``generation_config`` leaking in), vLLM when ``--use-vllm``, and
  all groups of a generation batch in one call.
- Token scores come from one forward pass over (prompt + completion), in micro-batches
  sized by a memory budget, keeping only the completion positions' logits
  (``logits_to_keep``), reduced to (G, T) on the device by ``adapt.token_scores``.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch

from ttrl_bench.adapt.reward import GroupReward, derived_seed
from ttrl_bench.adapt.token_scores import token_scores

# Logits of one forward micro-batch (rows x kept positions x vocabulary) are held at most
# this large; a single row is always allowed (TRL's own loss holds a whole micro-batch's).
LOGITS_BUDGET_BYTES = 512 * 2**20


def vocab_size(model) -> int:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and getattr(head, "weight", None) is not None and head.weight.dim() == 2:
        return int(head.weight.shape[0])
    return int(model.config.vocab_size)


def rows_per_forward(kept_positions: int, vocab: int, budget_bytes: int = LOGITS_BUDGET_BYTES) -> int:
    """How many sequences one forward may score so its (rows, kept, V) fp32 logits fit the budget."""
    return max(1, budget_bytes // max(1, kept_positions * vocab * 4))


def _forward_logits(model, ids: torch.Tensor, attn: torch.Tensor, keep: int) -> torch.Tensor:
    """Logits of the last ``keep`` positions; models without ``logits_to_keep`` give all and are sliced."""
    # explicit positions: a left-padded row must see the positions it would have unpadded
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    try:
        logits = model(input_ids=ids, attention_mask=attn, position_ids=positions, logits_to_keep=keep, use_cache=False).logits
    except TypeError:  # an architecture whose forward has no logits_to_keep
        logits = model(input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=False).logits
    return logits[:, -keep:]


@torch.no_grad()
def score_completions(
    model, prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]], wanted: Sequence[str], *,
    pad_id: int = 0, budget_bytes: int = LOGITS_BUDGET_BYTES, size_for_length: int | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-token scores (G, T) of each completion given its prompt, and the mask (G, T).

    The logits at position t predict token t + 1, so completion token j of a sequence whose
    prompt has length s is scored from position s - 1 + j. Only ``(G, T)`` tensors leave this
    function; the logits of a micro-batch are dropped before the next one is computed.
    ``size_for_length`` sizes the micro-batches for that completion length instead of the longest given.
    """
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts for {len(completion_ids)} completions")
    device = next(model.parameters()).device
    G = len(completion_ids)
    T = max((len(c) for c in completion_ids), default=0) or 1
    vocab = vocab_size(model)
    scores = {k: torch.zeros((G, T), dtype=torch.float32, device=device) for k in wanted}
    mask = torch.zeros((G, T), dtype=torch.float32, device=device)
    # longest completions first, so a micro-batch's first row sizes it and padding stays small;
    # scored rows go back in place
    order = sorted(range(G), key=lambda i: -len(completion_ids[i]))
    i = 0
    while i < G:
        # Sized by the rollout's length limit when given, not by these completions: under FSDP every
        # forward is a collective, so all processes must make the same number of forwards.
        longest = size_for_length if size_for_length is not None else len(completion_ids[order[i]])
        rows = order[i: i + rows_per_forward(longest + 1, vocab, budget_bytes)]
        i += len(rows)
        seqs = [list(prompt_ids[r]) + list(completion_ids[r]) for r in rows]
        width = max(map(len, seqs))
        # left padding: every sequence ends at the last column, so the kept positions are the tail
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for j, s in enumerate(seqs):
            ids[j, width - len(s):] = torch.tensor(s)
            attn[j, width - len(s):] = 1
        n_max = max(len(completion_ids[r]) for r in rows)
        logits = _forward_logits(model, ids.to(device), attn.to(device), n_max + 1)[:, :-1]  # (rows, n_max, V)
        taken = torch.zeros((len(rows), n_max), dtype=torch.long)
        for j, r in enumerate(rows):
            c = completion_ids[r]
            taken[j, n_max - len(c):] = torch.tensor(list(c))
        per_token = token_scores(logits, taken.to(device), wanted)
        del logits
        for j, r in enumerate(rows):
            n = len(completion_ids[r])
            for k, v in per_token.items():
                scores[k][r, :n] = v[j, n_max - n:].float()
            mask[r, :n] = 1
    return scores, mask


@contextmanager
def full_policy(trainer):
    """The trainer's model with all parameters present on this process (ZeRO-3 gathered, FSDP
    summoned), exactly as TRL's own rollout gets it. Every process must enter it together."""
    from trl.models import unwrap_model_for_generation

    with (
        unwrap_model_for_generation(
            trainer.model_wrapped, trainer.accelerator,
            gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as model,
        trainer._dist.summon_full_params(trainer.model_wrapped, recurse=False),
    ):
        yield model


def _check_trl(trainer) -> None:
    missing = [name for name in ("_tokenize_prompts", "_generate_single_turn", "_dist") if not hasattr(trainer, name)]
    if missing:
        import trl

        raise RuntimeError(f"TRL {trl.__version__}: GRPOTrainer lacks {missing}; ttrl-bench's extra votes follow TRL 1.16")


def bind(reward: GroupReward, trainer, *, seed: int, rank: int) -> None:
    _check_trl(trainer)
    tokenizer = trainer.processing_class
    cuda = torch.cuda.is_available()

    def extra_sampler(prompts: list, count: int) -> list[list[str]]:
        """``count`` more completions per prompt from TRL's rollout sampler, for the vote only."""
        repeated = [p for p in prompts for _ in range(count)]
        prompt_ids, images, multimodal = trainer._tokenize_prompts(repeated)
        # A stream per (run, rank, step): ranks do not draw the same votes, and TRL's own
        # rollout RNG is left untouched (a resumed run samples its rollouts as before).
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if cuda else []):
            torch.manual_seed(derived_seed("extra-votes", seed, rank, trainer.state.global_step))
            completion_ids, _ = trainer._generate_single_turn(prompt_ids, images, multimodal, count)
        texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        return [texts[i * count: (i + 1) * count] for i in range(len(prompts))]

    def scorer(prompts, completion_ids, wanted):
        prompt_ids, _, _ = trainer._tokenize_prompts(list(prompts))
        with full_policy(trainer) as model, trainer.accelerator.autocast():
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            return score_completions(model, prompt_ids, completion_ids, wanted, pad_id=pad,
                                     size_for_length=trainer.args.max_completion_length)

    @torch.no_grad()
    def prober(prompt, continuations: list[str]) -> list[list[str]]:
        """The policy's forced answers after each ``prompt + continuation`` (m each, no gradient).

        The continuation is tokenised on its own and appended to the prompt's ids, as the
        policy's own tokens followed it; one left-padded generate call for all of them.
        """
        m = reward.progress_answers
        prompt_ids, _, _ = trainer._tokenize_prompts([prompt])  # the prompt as TRL's rollouts encode it
        pids = list(prompt_ids[0])
        seqs = [pids + tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
        width = max(map(len, seqs))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        args = trainer.args  # the rollout's own sampling settings
        with full_policy(trainer) as model:
            ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=model.device)
            attn = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=model.device)
            was_training = model.training
            model.eval()
            out = model.generate(
                input_ids=ids, attention_mask=attn, do_sample=True, temperature=args.temperature, top_p=args.top_p,
                top_k=args.top_k or None, max_new_tokens=reward.progress.settings.forced_max_tokens,
                num_return_sequences=m, pad_token_id=pad,
            )
            model.train(was_training)
        texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        return [texts[i * m : (i + 1) * m] for i in range(len(continuations))]

    reward.extra_sampler = extra_sampler
    reward.scorer = scorer
    reward.prober = prober
