"""Access to the current policy from inside TRL's reward function (extra votes, logits).

Composition rather than a GRPOTrainer subclass: the reward object is given two
closures over the trainer's (unwrapped) model after the trainer is built.
"""
from __future__ import annotations

import torch

from ttrl_bench.adapt.reward import GroupReward


def _encode_prompt(tokenizer, prompt) -> list[int]:
    if isinstance(prompt, str):
        return tokenizer(prompt)["input_ids"]
    return list(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])


def bind(reward: GroupReward, trainer, *, temperature: float, top_p: float, top_k: int, max_new_tokens: int) -> None:
    tokenizer = trainer.processing_class

    def policy():
        return trainer.accelerator.unwrap_model(trainer.model)

    @torch.no_grad()
    def extra_sampler(prompt, count: int) -> list[str]:
        """``count`` more completions of the current policy, for the vote only (no gradient)."""
        model = policy()
        ids = torch.tensor([_encode_prompt(tokenizer, prompt)], device=model.device)
        was_training = model.training
        model.eval()
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=temperature,
            top_p=top_p, top_k=top_k or None, max_new_tokens=max_new_tokens, num_return_sequences=count,
            pad_token_id=tokenizer.pad_token_id,
        )
        model.train(was_training)
        return tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)

    @torch.no_grad()
    def scorer(prompts, completion_ids):
        """Logits at the completion positions, the sampled tokens' log-probs, and their mask."""
        model = policy()
        seqs, starts = [], []
        for p, c in zip(prompts, completion_ids):
            pids = _encode_prompt(tokenizer, p)
            seqs.append(pids + list(c))
            starts.append(len(pids))
        width = max(map(len, seqs))
        T = max(len(c) for c in completion_ids) or 1
        pad = tokenizer.pad_token_id or 0
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            attn[i, : len(s)] = 1
        logits_all = model(input_ids=ids.to(model.device), attention_mask=attn.to(model.device)).logits.float().cpu()
        V = logits_all.shape[-1]
        logits = torch.zeros(len(seqs), T, V)
        logprobs = torch.zeros(len(seqs), T)
        mask = torch.zeros(len(seqs), T)
        for i, (start, c) in enumerate(zip(starts, completion_ids)):
            n = len(c)
            if n == 0:
                continue
            # the logits at position t predict token t+1
            step_logits = logits_all[i, start - 1 : start - 1 + n]
            logits[i, :n] = step_logits
            logprobs[i, :n] = torch.log_softmax(step_logits, -1).gather(-1, torch.tensor(list(c))[:, None]).squeeze(-1)
            mask[i, :n] = 1
        return logits, logprobs, mask

    @torch.no_grad()
    def prober(prompt, continuations: list[str]) -> list[list[str]]:
        """The policy's forced answers after each ``prompt + continuation`` (m each, no gradient).

        The continuation is tokenised on its own and appended to the prompt's ids, as the
        policy's own tokens followed it; one left-padded generate call for all of them.
        """
        model = policy()
        m = reward.progress_answers
        pids = _encode_prompt(tokenizer, prompt)
        seqs = [pids + tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
        width = max(map(len, seqs))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=model.device)
        attn = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=model.device)
        was_training = model.training
        model.eval()
        out = model.generate(
            input_ids=ids, attention_mask=attn, do_sample=True, temperature=temperature, top_p=top_p,
            top_k=top_k or None, max_new_tokens=reward.progress.settings.forced_max_tokens, num_return_sequences=m,
            pad_token_id=pad,
        )
        model.train(was_training)
        texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        return [texts[i * m : (i + 1) * m] for i in range(len(continuations))]

    reward.extra_sampler = extra_sampler
    reward.scorer = scorer
    reward.prober = prober
