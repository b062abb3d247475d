"""Tokeniser ids equal OpenAI CLIP's: an independent BPE written here from the algorithm, and hand-checked ids."""
import gzip

import numpy as np
import pytest
import regex

from sfr_jax.text.tokenizer import END_ID, START_ID, ClipTokenizer, clean_text, default_bpe_path

PROMPTS = [
    "a photo of a cat",
    "Cracks, breaks, and collapses in the pipe wall",
    "Roots intruding through a displaced joint; water infiltration (heavy)!",
    "lateral reinstatement cuts: don't over-cut the liner's edge 3mm",
    "Café déjà-vu naïve façade 12345 x+y=z @home #tag",
    "multiple     spaces\tand\nnewlines",
]


@pytest.fixture(scope="module")
def tok():
    return ClipTokenizer.default()


def _oracle():
    """OpenAI CLIP BPE from its merges file, written independently of the package under test."""
    lines = gzip.open(default_bpe_path(), "rt", encoding="utf-8").read().split("\n")[1:49152 - 256 - 2 + 1]
    merges = [tuple(l.split()) for l in lines]
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    byte_char = {b: chr(b) for b in keep}
    byte_char.update({b: chr(256 + n) for n, b in enumerate(b for b in range(256) if b not in keep)})
    base = [byte_char[b] for b in keep] + [byte_char[b] for b in range(256) if b not in keep]
    vocab = base + [c + "</w>" for c in base] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    index = {t: i for i, t in enumerate(vocab)}
    rank = {m: i for i, m in enumerate(merges)}
    pattern = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                            regex.IGNORECASE)

    def bpe(word):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = [(rank.get((a, b), 1e9), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            best, _ = min(pairs)
            if best == 1e9:
                break
            pair = merges[best]
            merged, i = [], 0
            while i < len(parts):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def ids(text):
        text = " ".join(text.split()).lower()
        out = [START_ID]
        for piece in pattern.findall(text):
            out += [index[p] for p in bpe("".join(byte_char[b] for b in piece.encode("utf-8")))]
        return out + [END_ID]

    return ids


def test_ids_equal_independent_bpe(tok):
    oracle = _oracle()
    for prompt in PROMPTS:
        assert tok.ids(prompt) == oracle(prompt), prompt


def test_hand_checked_ids(tok):
    # OpenAI CLIP: "a"=320, "photo"=1125, "of"=539, "cat"=2368
    assert tok.ids("a photo of a cat") == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok.ids("A  PHOTO of a cat ") == tok.ids("a photo of a cat")


def test_clean_text_like_openai():
    assert clean_text("  Fish &amp;amp; Chips  ") == "fish & chips"
    assert clean_text("a\t\nb") == "a b"


def test_encode_pads_with_zeros_to_multiple_of_8(tok):
    out = tok.encode(PROMPTS[:3])
    lengths = [len(tok.ids(p)) for p in PROMPTS[:3]]
    assert out.dtype == np.int32 and out.shape == (3, -(-max(lengths) // 8) * 8)
    for row, prompt, n in zip(out, PROMPTS, lengths):
        assert list(row[:n]) == tok.ids(prompt) and not row[n:].any()
        assert row.argmax() == n - 1  # end-of-text is the largest id: where the text tower pools
    assert tok.encode("a cat").shape == (1, 8)
    assert tok.encode(["word " * 71]).shape == (1, 77)  # 73 tokens: rounded up to 80 but capped at the context


def test_too_long_prompt_names_it(tok):
    long = "pipe " * 80
    with pytest.raises(ValueError, match="pipe pipe"):
        tok.encode(["fine", long])
    with pytest.raises(ValueError, match="context of 8"):
        tok.encode(["one two three four five six seven"], context_length=8)


def test_save_and_from_pretrained_round_trip(tok, tmp_path):
    tok.save(str(tmp_path))
    again = ClipTokenizer.from_pretrained(str(tmp_path))
    np.testing.assert_array_equal(again.encode(PROMPTS), tok.encode(PROMPTS))
    # transformers reads the saved files as an ordinary CLIP tokenizer with the same ids
    import transformers
    hf = transformers.CLIPTokenizer.from_pretrained(str(tmp_path))
    assert hf(PROMPTS[1])["input_ids"] == tok.ids(PROMPTS[1])
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        ClipTokenizer.from_pretrained(str(tmp_path / "nothing"))
