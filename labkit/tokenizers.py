"""Offline CLIP tokenizers for every family, built from the BPE vocabulary shipped in labkit/configs/clip."""

import gzip
import json
from functools import lru_cache

from .families import CONFIGS
from .families import family as family_record

CLIP_DIR = CONFIGS / "clip"


@lru_cache(maxsize=1)
def _bpe_files() -> tuple[dict, list[tuple[str, str]]]:
    vocab = json.loads(gzip.open(CLIP_DIR / "vocab.json.gz", "rt", encoding="utf-8").read())
    merges = gzip.open(CLIP_DIR / "merges.txt.gz", "rt", encoding="utf-8").read().split("\n")[1:]
    return vocab, [tuple(m.split()) for m in merges if m]


def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """A fresh CLIP tokenizer (49408 tokens, 77-token window); each call returns a new object."""
    from transformers import CLIPTokenizer

    vocab, merges = _bpe_files()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token=pad_token, model_max_length=77)


def tokenizer(family: str):
    """The offline tokenizer of a family: one CLIPTokenizer, or a pair for SDXL-layout bases.

    >>> tok = tokenizer("sd1"); tok("a cat").input_ids
    [49406, 320, 2368, 49407]
    """
    toks = tuple(clip_tokenizer(pad) for pad in family_record(family).pad_tokens)  # OpenCLIP pads with "!"
    return toks if len(toks) > 1 else toks[0]
