"""Declarative name maps between our flat parameters and foreign formats: one table per format, both
directions derived from it (numpy and `re` only, so the torch-only module can use it too).

A `Rule` pairs a template of our name with a template of theirs, e.g.
    Rule("vision_model.encoder.layers.{i}.mlp.fc1.kernel", "visual.transformer.resblocks.{i}.mlp.c_fc.weight", "T")
with a transform where the layouts differ: "T" (a 2-D transpose: our Linear kernels are [in, out], torch's
weights [out, in]) or "conv" (our [kh, kw, in, out] against torch's [out, in, kh, kw]); both are their own
inverse in the sense that `to_ours` and `to_theirs` apply the matching direction. `{i}`-like placeholders
({i}, {j}, {n}) match digits, any other placeholder any dotted text. A `Fuse` maps several of our tensors
onto one of theirs, concatenated on axis 0 (torch's fused attention in_proj). Hooks rename whole states
where a name depends on its neighbours (the reference's adapter wrapper), in both directions.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from sfr_jax.errors import UnknownNames

_DIGITS = ("i", "j", "n")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _pattern(template: str) -> re.Pattern:
    out, last = [], 0
    for m in _PLACEHOLDER.finditer(template):
        out.append(re.escape(template[last:m.start()]))
        out.append(rf"(?P<{m.group(1)}>\d+)" if m.group(1) in _DIGITS else rf"(?P<{m.group(1)}>.+?)")
        last = m.end()
    out.append(re.escape(template[last:]))
    return re.compile("^" + "".join(out) + "$")


def to_theirs_layout(kind: str, x: np.ndarray) -> np.ndarray:
    """Our layout -> theirs for a transform kind ('' | 'T' | 'conv')."""
    if kind == "T":
        return np.ascontiguousarray(np.asarray(x).T)
    if kind == "conv":  # [kh, kw, in, out] -> [out, in, kh, kw]
        return np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))
    return np.asarray(x)


def to_ours_layout(kind: str, x: np.ndarray) -> np.ndarray:
    """Their layout -> ours for a transform kind ('' | 'T' | 'conv')."""
    if kind == "T":
        return np.ascontiguousarray(np.asarray(x).T)
    if kind == "conv":  # [out, in, kh, kw] -> [kh, kw, in, out]
        return np.ascontiguousarray(np.transpose(x, (2, 3, 1, 0)))
    return np.asarray(x)


@dataclasses.dataclass(frozen=True)
class Rule:
    """One of our tensors <-> one of theirs, with the layout transform between them."""

    ours: str
    theirs: str
    transform: str = ""

    def __post_init__(self):
        if self.transform not in ("", "T", "conv"):
            raise ValueError(f"unknown transform {self.transform!r}")


@dataclasses.dataclass(frozen=True)
class Fuse:
    """Several of our tensors <-> one of theirs, concatenated on axis 0 in their layout."""

    ours: Tuple[str, ...]
    theirs: str
    transform: str = ""


class NameMap:
    """A foreign format's table, usable both ways. Unknown names are a KeyError listing all of them."""

    def __init__(self, name: str, rules: Sequence, *, ignore: Sequence[str] = (),
                 read_hook: Optional[Callable[[dict], dict]] = None,
                 write_hook: Optional[Callable[[dict], dict]] = None):
        self.name, self.rules = name, tuple(rules)
        self._ignore = [_pattern(t) for t in ignore]
        self._read_hook, self._write_hook = read_hook, write_hook
        self._ours = [(r, [_pattern(t) for t in (r.ours if isinstance(r, Fuse) else (r.ours,))]) for r in self.rules]
        self._theirs = [(r, _pattern(r.theirs)) for r in self.rules]

    def prefixed(self, ours: str, theirs: str, name: Optional[str] = None) -> "NameMap":
        """The same table with a prefix on each side (hooks are not carried over)."""
        def one(r):
            if isinstance(r, Fuse):
                return Fuse(tuple(ours + t for t in r.ours), theirs + r.theirs, r.transform)
            return Rule(ours + r.ours, theirs + r.theirs, r.transform)
        return NameMap(name or self.name, [one(r) for r in self.rules])

    def rule_for_theirs(self, name: str):
        """(rule, placeholder values) of one of their names, or None."""
        for rule, pattern in self._theirs:
            m = pattern.match(name)
            if m:
                return rule, m.groupdict()
        return None

    def rule_for_ours(self, name: str):
        """(rule, index of the part for a Fuse else 0, placeholder values) of one of our names, or None."""
        for rule, patterns in self._ours:
            for part, pattern in enumerate(patterns):
                m = pattern.match(name)
                if m:
                    return rule, part, m.groupdict()
        return None

    def to_ours(self, state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Their state (numpy) -> our flat names and layouts."""
        state = self._read_hook(dict(state)) if self._read_hook else dict(state)
        out, unknown = {}, []
        for name, value in state.items():
            if any(p.match(name) for p in self._ignore):
                continue
            found = self.rule_for_theirs(name)
            if found is None:
                unknown.append(name)
                continue
            rule, values = found
            x = np.asarray(value)
            if isinstance(rule, Fuse):
                if x.shape[0] % len(rule.ours):
                    raise UnknownNames(f"{name}: first dimension {x.shape[0]} does not split into {len(rule.ours)}")
                for template, part in zip(rule.ours, np.split(x, len(rule.ours), axis=0)):
                    out[template.format(**values)] = to_ours_layout(rule.transform, part)
            else:
                out[rule.ours.format(**values)] = to_ours_layout(rule.transform, x)
        if unknown:
            raise UnknownNames(f"unexpected tensors for the {self.name} layout: {sorted(unknown)}")
        return out

    def to_theirs(self, flat: Mapping[str, np.ndarray], **context) -> Dict[str, np.ndarray]:
        """Our flat params -> their names and layouts; `context` fills placeholders only they have."""
        out, unknown, fused = {}, [], {}
        for name, value in flat.items():
            found = self.rule_for_ours(name)
            if found is None:
                unknown.append(name)
                continue
            rule, part, values = found
            target = rule.theirs.format(**{**context, **values})
            x = to_theirs_layout(rule.transform, value)
            if isinstance(rule, Fuse):
                fused.setdefault(target, {})[part] = x
            else:
                out[target] = x
        if unknown:
            raise UnknownNames(f"no {self.name} name for: {sorted(unknown)}")
        for target, parts in fused.items():
            if len(parts) != len(self._fuse_of(target).ours):
                raise UnknownNames(f"{target}: only parts {sorted(parts)} of a fused tensor are present")
            out[target] = np.ascontiguousarray(np.concatenate([parts[k] for k in sorted(parts)], axis=0))
        return self._write_hook(out) if self._write_hook else out

    def _fuse_of(self, theirs_name: str) -> Fuse:
        return self.rule_for_theirs(theirs_name)[0]


# ---------------------------------------------------------------- Hugging Face CLIPModel

_HF_LINEAR = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "adapter.down", "adapter.up")
_HF_NORMS = ("layer_norm1", "layer_norm2", "pre_layrnorm", "post_layernorm", "final_layer_norm")

HF = NameMap("Hugging Face CLIP", [
    Rule("{p}.patch_embedding.kernel", "{p}.patch_embedding.weight", "conv"),
    *[Rule(f"{{p}}.{e}.embedding", f"{{p}}.{e}.weight") for e in ("token_embedding", "position_embedding")],
    *[Rule(f"{{p}}.{n}.{ours}", f"{{p}}.{n}.{theirs}") for n in _HF_NORMS
      for ours, theirs in (("scale", "weight"), ("bias", "bias"))],
    *[Rule(f"{{p}}.{lin}.kernel", f"{{p}}.{lin}.weight", "T") for lin in _HF_LINEAR],
    *[Rule(f"{{p}}.{lin}.bias", f"{{p}}.{lin}.bias") for lin in _HF_LINEAR],
    Rule("visual_projection.kernel", "visual_projection.weight", "T"),
    Rule("text_projection.kernel", "text_projection.weight", "T"),
    Rule("{p}.class_embedding", "{p}.class_embedding"),
    Rule("logit_scale", "logit_scale"),
], ignore=(r"{p}.position_ids",))  # a buffer some HF checkpoints carry, no learned values


# ---------------------------------------------------------------- OpenAI CLIP (and the reference's CLIP part)

_TOWERS = (("vision_model.encoder.layers", "visual.transformer.resblocks"),
           ("text_model.encoder.layers", "transformer.resblocks"))
_OPENAI_BLOCK = (
    ("self_attn.out_proj.kernel", "attn.out_proj.weight", "T"), ("self_attn.out_proj.bias", "attn.out_proj.bias", ""),
    ("layer_norm1.scale", "ln_1.weight", ""), ("layer_norm1.bias", "ln_1.bias", ""),
    ("layer_norm2.scale", "ln_2.weight", ""), ("layer_norm2.bias", "ln_2.bias", ""),
    ("mlp.fc1.kernel", "mlp.c_fc.weight", "T"), ("mlp.fc1.bias", "mlp.c_fc.bias", ""),
    ("mlp.fc2.kernel", "mlp.c_proj.weight", "T"), ("mlp.fc2.bias", "mlp.c_proj.bias", ""),
    ("adapter.down.kernel", "adapter.down_project.weight", "T"), ("adapter.down.bias", "adapter.down_project.bias", ""),
    ("adapter.up.kernel", "adapter.up_project.weight", "T"), ("adapter.up.bias", "adapter.up_project.bias", ""),
)
_OPENAI_TOP = (  # OpenAI's `proj` matrices are used as x @ proj, i.e. already [in, out]
    ("vision_model.embeddings.patch_embedding.kernel", "visual.conv1.weight", "conv"),
    ("vision_model.embeddings.class_embedding", "visual.class_embedding", ""),
    ("vision_model.embeddings.position_embedding.embedding", "visual.positional_embedding", ""),
    ("vision_model.pre_layrnorm.scale", "visual.ln_pre.weight", ""),
    ("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias", ""),
    ("vision_model.post_layernorm.scale", "visual.ln_post.weight", ""),
    ("vision_model.post_layernorm.bias", "visual.ln_post.bias", ""),
    ("visual_projection.kernel", "visual.proj", ""),
    ("text_model.embeddings.token_embedding.embedding", "token_embedding.weight", ""),
    ("text_model.embeddings.position_embedding.embedding", "positional_embedding", ""),
    ("text_model.final_layer_norm.scale", "ln_final.weight", ""),
    ("text_model.final_layer_norm.bias", "ln_final.bias", ""),
    ("text_projection.kernel", "text_projection", ""),
    ("logit_scale", "logit_scale", ""),
)


def _openai_rules():
    rules = [Rule(o, t, k) for o, t, k in _OPENAI_TOP]
    for ours, theirs in _TOWERS:
        rules += [Rule(f"{ours}.{{i}}.{o}", f"{theirs}.{{i}}.{t}", k) for o, t, k in _OPENAI_BLOCK]
        rules += [Fuse(tuple(f"{ours}.{{i}}.self_attn.{p}_proj.{leaf}" for p in "qkv"),
                       f"{theirs}.{{i}}.attn.in_proj_{theirs_leaf}", "T" if leaf == "kernel" else "")
                  for leaf, theirs_leaf in (("kernel", "weight"), ("bias", "bias"))]
    return rules


OPENAI = NameMap("OpenAI CLIP", _openai_rules(),
                 ignore=("input_resolution", "context_length", "vocab_size"))  # TorchScript archives' non-tensors


# ---------------------------------------------------------------- the reference SFR-Net state_dict

_WRAPPED = re.compile(r"^((?:.*\.)?(?:visual\.transformer|transformer)\.resblocks\.\d+\.)original_block\.(.+)$")
_BLOCK = re.compile(r"^((?:.*\.)?(?:visual\.transformer|transformer)\.resblocks\.\d+\.)(.+)$")


def unwrap_reference(state: dict) -> dict:
    """Reading: drop DataParallel's `module.` and the reference's RSBlockWrapper level (`original_block.`)."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    return {(_WRAPPED.sub(r"\1\2", k)): v for k, v in state.items()}


def wrap_reference(state: dict) -> dict:
    """Writing: blocks that carry an adapter are the reference's RSBlockWrapper (`resblocks.N.original_block.*`
    beside `resblocks.N.adapter.*`)."""
    adapted = {m.group(1) for m in map(_BLOCK.match, state) if m and m.group(2).startswith("adapter.")}
    out = {}
    for k, v in state.items():
        m = _BLOCK.match(k)
        wrap = m and m.group(1) in adapted and not m.group(2).startswith("adapter.")
        out[f"{m.group(1)}original_block.{m.group(2)}" if wrap else k] = v
    return out


_HEAD = (  # our MEF head / GCN <-> the reference's `mlp` Sequential (the output Linear last) / `gcn_corrector`
    Rule("head.blocks.{i}.layer_norm.scale", "mlp.{i}.layer_norm.weight"),
    Rule("head.blocks.{i}.layer_norm.bias", "mlp.{i}.layer_norm.bias"),
    Rule("head.blocks.{i}.fc1.kernel", "mlp.{i}.fc1.weight", "T"), Rule("head.blocks.{i}.fc1.bias", "mlp.{i}.fc1.bias"),
    Rule("head.blocks.{i}.fc2.kernel", "mlp.{i}.fc2.weight", "T"), Rule("head.blocks.{i}.fc2.bias", "mlp.{i}.fc2.bias"),
    Rule("head.out.kernel", "mlp.{n}.weight", "T"), Rule("head.out.bias", "mlp.{n}.bias"),  # n = number of blocks
    Rule("gcn.gc1.weight", "gcn_corrector.gc1.weight"), Rule("gcn.gc2.weight", "gcn_corrector.gc2.weight"),
)

REFERENCE = NameMap("reference SFR-Net", list(OPENAI.prefixed("clip.", "clip_model.").rules) + list(_HEAD),
                    ignore=("clip_model.input_resolution", "clip_model.context_length", "clip_model.vocab_size"),
                    read_hook=unwrap_reference, write_hook=wrap_reference)


def head_blocks(flat: Mapping[str, np.ndarray]) -> int:
    """Number of ResidualMLP blocks of our MEF head in flat params (the reference's output Linear index)."""
    return len({m.group(1) for m in map(re.compile(r"^head\.blocks\.(\d+)\.").match, flat) if m})


def to_reference(flat: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Our SFR-Net flat params (`clip.*`, `head.*`, `gcn.*`) -> the reference state_dict layout."""
    return REFERENCE.to_theirs(flat, n=head_blocks(flat))


def from_reference_names(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The reference state_dict layout -> our flat names; the head's output Linear must come last."""
    flat = REFERENCE.to_ours(state)
    ours = unwrap_reference(dict(state))
    outs = {int(m.group(1)) for m in map(re.compile(r"^mlp\.(\d+)\.(weight|bias)$").match, ours) if m}
    if outs and outs != {head_blocks(flat)}:
        raise UnknownNames(f"the reference head's output Linear is mlp.{sorted(outs)}, expected "
                       f"mlp.{head_blocks(flat)} after {head_blocks(flat)} blocks")
    return flat


# ---------------------------------------------------------------- our hf-layout export's sfr_extras.safetensors

HF_EXTRAS = NameMap("sfr_extras (PyTorch layouts)", [
    *[Rule(f"clip.{{p}}.adapter.{p}.{ours}", f"{{p}}.adapter.{p}.{theirs}", k) for p in ("down", "up")
      for ours, theirs, k in (("kernel", "weight", "T"), ("bias", "bias", ""))],
    Rule("head.blocks.{i}.layer_norm.scale", "head.blocks.{i}.layer_norm.weight"),
    Rule("head.blocks.{i}.layer_norm.bias", "head.blocks.{i}.layer_norm.bias"),
    *[Rule(f"head.blocks.{{i}}.{fc}.{ours}", f"head.blocks.{{i}}.{fc}.{theirs}", k) for fc in ("fc1", "fc2")
      for ours, theirs, k in (("kernel", "weight", "T"), ("bias", "bias", ""))],
    Rule("head.out.kernel", "head.out.weight", "T"), Rule("head.out.bias", "head.out.bias"),
    Rule("gcn.gc1.weight", "gcn.gc1.weight"), Rule("gcn.gc2.weight", "gcn.gc2.weight"),  # same [in, out] layout
])
