"""CLIP BPE tokeniser giving the reference's ids: start 49406, end 49407, zero padding.

The BPE itself is transformers' CLIPTokenizer (Rust `tokenizers`); the text clean-up in front of it is the
one OpenAI's CLIP applies (ftfy, double html unescape, whitespace collapse, lower case).
"""
from __future__ import annotations

import gzip
import html
import importlib.util
import os
import re
from typing import List, Sequence, Union

import numpy as np

from sfr_jax.errors import InputError, MissingInput

START_ID = 49406
END_ID = 49407
# OpenAI's bpe_simple_vocab_16e6.txt.gz: the first line is a header, then 49152 - 256 - 2 merges are used.
_NUM_MERGES = 49152 - 256 - 2


def _byte_alphabet() -> List[str]:
    """GPT-2's reversible byte -> printable character table, in byte order of the vocabulary."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    table = {}
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    # the vocabulary lists the printable bytes first, then the remapped ones
    chars = [table[b] for b in printable] + [table[b] for b in range(256) if b not in printable]
    return chars


def vocab_from_bpe_gz(path: str):
    """(vocab dict, merges list) equivalent to OpenAI's tokenizer built from its .txt.gz merges file."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1: _NUM_MERGES + 1]]
    bad = [m for m in merges if len(m) != 2]
    if bad or len(merges) != _NUM_MERGES:
        raise InputError(f"{path} is not a CLIP BPE merges file ({len(merges)} merges, malformed: {bad[:3]})")
    alphabet = _byte_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def default_bpe_path() -> str:
    """open_clip's copy of OpenAI's bpe_simple_vocab_16e6.txt.gz (located without importing open_clip)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise MissingInput("bpe_simple_vocab_16e6.txt.gz not found: `pip install --no-deps open_clip_torch==3.3.0`"
                                " or use ClipTokenizer.from_pretrained(<HF CLIP folder>)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "bpe_simple_vocab_16e6.txt.gz")
    if not os.path.isfile(path):
        raise MissingInput(f"{path} is missing from the open_clip install")
    return path


def clean_text(text: str) -> str:
    """OpenAI CLIP's clean-up: ftfy fix, html unescape twice, whitespace collapsed, lower case."""
    try:
        import ftfy
        text = ftfy.fix_text(text)
    except ImportError:  # ftfy only changes mis-decoded or typographic text; plain prompts are unaffected
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


class ClipTokenizer:
    """Tokenises prompts into the reference's int32 id arrays."""

    def __init__(self, hf_tokenizer):
        self._tok = hf_tokenizer
        start, end = hf_tokenizer.bos_token_id, hf_tokenizer.eos_token_id
        if (start, end) != (START_ID, END_ID):
            raise InputError(f"tokenizer has start/end ids {start}/{end}, expected {START_ID}/{END_ID}")

    @classmethod
    def from_pretrained(cls, folder: str) -> "ClipTokenizer":
        """From a Hugging Face CLIP folder's tokenizer files (tokenizer.json or vocab.json + merges.txt)."""
        from transformers import CLIPTokenizer
        if not any(os.path.isfile(os.path.join(folder, f)) for f in ("tokenizer.json", "vocab.json")):
            raise MissingInput(f"no tokenizer.json or vocab.json in {folder}")
        return cls(CLIPTokenizer.from_pretrained(folder, local_files_only=True))

    @classmethod
    def from_bpe_gz(cls, path: str) -> "ClipTokenizer":
        """From OpenAI's bpe_simple_vocab_16e6.txt.gz merges file."""
        from transformers import CLIPTokenizer
        vocab, merges = vocab_from_bpe_gz(path)
        return cls(CLIPTokenizer(vocab=vocab, merges=list(merges)))

    @classmethod
    def default(cls) -> "ClipTokenizer":
        """OpenAI's vocabulary as shipped with open_clip."""
        return cls.from_bpe_gz(default_bpe_path())

    def save(self, folder: str) -> None:
        """Write the tokenizer files (loadable with from_pretrained and by transformers)."""
        os.makedirs(folder, exist_ok=True)
        self._tok.save_pretrained(folder)

    @property
    def vocab_size(self) -> int:
        return len(self._tok)

    def ids(self, text: str) -> List[int]:
        """[START] + BPE ids of the cleaned text + [END], unpadded."""
        body = self._tok(clean_text(text), add_special_tokens=False)["input_ids"]
        return [START_ID] + list(body) + [END_ID]

    def encode(self, texts: Union[str, Sequence[str]], context_length: int = 77) -> np.ndarray:
        """[N, L] int32 ids, zero padded, L = min(context_length, longest rounded up to a multiple of 8)."""
        if isinstance(texts, str):
            texts = [texts]
        seqs = [self.ids(t) for t in texts]
        for text, seq in zip(texts, seqs):
            if len(seq) > context_length:
                raise InputError(f"prompt is {len(seq)} tokens, more than the context of {context_length}: {text!r}")
        longest = max((len(s) for s in seqs), default=2)
        length = min(context_length, -(-longest // 8) * 8)
        out = np.zeros((len(seqs), length), np.int32)
        for i, seq in enumerate(seqs):
            out[i, :len(seq)] = seq
        return out
