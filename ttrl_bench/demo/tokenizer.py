"""The tiny model's character tokenizer, saved as a standard ``tokenizer.json``.

Its post-processor adds BOS itself, so transformers, vLLM, TRL and lm-eval all
feed the model the same ids (a hand-prepended BOS that one consumer forgets makes
that consumer measure a different model).
"""
from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = list("0123456789+= ")


def build_tokenizer(extra_chars: str = "") -> PreTrainedTokenizerFast:
    """The adder's tokenizer; ``extra_chars`` are appended after its ids (the episodes model's markers)."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS + [c for c in extra_chars if c not in CHARS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
        model_max_length=64,
    )
