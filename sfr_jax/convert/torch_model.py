"""A small PyTorch SFR-Net for inference that needs torch and numpy, not JAX (with sfr_jax installed, it imports
only the plain-Python name tables and sidecar reader of sfr_jax.convert).

It loads what `sfr-jax export --layout reference` writes: a state_dict in the reference PyTorch SFR-Net's
key layout (OpenAI CLIP names under `clip_model.`, adapters in `resblocks.N.adapter`, `mlp.*`, `gcn_corrector.*`)
and the JSON sidecar next to it (model shape, classes, their token ids, the GR adjacency, normalisation).

    model = SFRNetTorch.from_export("run1.pth")            # reads run1.json too
    model = SFRNetTorch.from_hf_export("run1_hf/")         # or the Hugging Face layout folder
    logits = model(images_nchw, mode="gzsl")               # [B, C] raw logits
    decided = model.decide(logits, mode="gzsl")            # probabilities, fired labels, normal (calibrated)
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sfr_jax.convert import names
from sfr_jax.convert.sidecar import read_sidecar, sidecar_path


def _act(name: str):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return F.gelu
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: F.gelu(x, approximate="tanh")
    raise ValueError(f"unknown hidden_act {name!r}")


class Attention(nn.Module):
    """Self-attention with a fused [3D, D] input projection (nn.MultiheadAttention's parameter names)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, causal: bool):
        b, n, d = x.shape
        h = self.heads
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).split(d, dim=-1)
        q, k, v = (t.reshape(b, n, h, d // h).transpose(1, 2) for t in (q, k, v))
        logits = (q @ k.transpose(-1, -2)) * (d // h) ** -0.5
        if causal:
            mask = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
            logits = logits.masked_fill(~mask, float("-inf"))
        out = logits.softmax(dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    """c_fc -> activation -> c_proj."""

    def __init__(self, dim: int, hidden: int, act: str):
        super().__init__()
        self.c_fc = nn.Linear(dim, hidden)
        self.c_proj = nn.Linear(hidden, dim)
        self.act = _act(act)

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    """Pre-LN transformer block; `forward` returns the residual stream after attention and the normed input
    of the MLP as well, so that an adapter can read it."""

    def __init__(self, dim: int, heads: int, hidden: int, act: str, eps: float):
        super().__init__()
        self.attn = Attention(dim, heads)
        self.ln_1 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, hidden, act)
        self.ln_2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x, causal: bool = False):
        x = x + self.attn(self.ln_1(x), causal)
        return x + self.mlp(self.ln_2(x))


class Adapter(nn.Module):
    """RS adapter: up(GELU_erf(down(h))) (dropout is inactive at inference)."""

    def __init__(self, dim: int, bottleneck: int):
        super().__init__()
        self.down_project = nn.Linear(dim, bottleneck)
        self.up_project = nn.Linear(bottleneck, dim)

    def forward(self, h):
        return self.up_project(F.gelu(self.down_project(h)))


class AdaptedBlock(nn.Module):
    """x += attn(ln_1 x); h = ln_2 x; x += mlp(h) + adapter(h); names as the reference's wrapper."""

    def __init__(self, block: Block, adapter: Adapter):
        super().__init__()
        self.original_block = block
        self.adapter = adapter

    def forward(self, x, causal: bool = False):
        b = self.original_block
        x = x + b.attn(b.ln_1(x), causal)
        h = b.ln_2(x)
        return x + b.mlp(h) + self.adapter(h)


class Transformer(nn.Module):
    def __init__(self, cfg: dict, rs: dict):
        super().__init__()
        n = cfg["num_hidden_layers"]
        blocks = []
        for i in range(n):
            block = Block(cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"],
                          cfg.get("hidden_act", "quick_gelu"), cfg.get("layer_norm_eps", 1e-5))
            if _adapted(rs, i, n):
                block = AdaptedBlock(block, Adapter(cfg["hidden_size"], rs["bottleneck_dim"]))
            blocks.append(block)
        self.resblocks = nn.ModuleList(blocks)

    def forward(self, x, causal: bool = False):
        for block in self.resblocks:
            x = block(x, causal)
        return x


def _adapted(rs: dict, layer: int, n: int) -> bool:
    if not rs.get("enabled", True):
        return False
    layers = rs.get("layers")
    if layers is None or -1 in layers:
        return True
    return layer in {i % n if i < 0 else i for i in layers}


class VisionTower(nn.Module):
    """OpenAI's ViT image tower returning every token after ln_post and `proj` (not only the class token)."""

    def __init__(self, cfg: dict, rs: dict, projection_dim: int):
        super().__init__()
        d, p = cfg["hidden_size"], cfg["patch_size"]
        self.patch_size = p
        eps = cfg.get("layer_norm_eps", 1e-5)
        self.conv1 = nn.Conv2d(3, d, kernel_size=p, stride=p, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(d))
        self.positional_embedding = nn.Parameter(torch.zeros((cfg["image_size"] // p) ** 2 + 1, d))
        self.ln_pre = nn.LayerNorm(d, eps=eps)
        self.transformer = Transformer(cfg, rs)
        self.ln_post = nn.LayerNorm(d, eps=eps)
        self.proj = nn.Parameter(torch.zeros(d, projection_dim))

    def position_table(self, grid_h: int, grid_w: int):
        """The position table for a grid_h x grid_w patch grid (bicubic resize of the stored grid)."""
        table = self.positional_embedding
        g = int(round(math.sqrt(table.shape[0] - 1)))
        if (grid_h, grid_w) == (g, g):
            return table
        grid = table[1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return torch.cat([table[:1], grid.permute(0, 2, 3, 1).reshape(grid_h * grid_w, -1)], dim=0)

    def forward(self, images):
        b, _, h, w = images.shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        x = self.conv1(images).flatten(2).transpose(1, 2)  # [B, P, D], patches in row-major order
        cls = self.class_embedding.expand(b, 1, -1)
        x = torch.cat([cls, x], dim=1) + self.position_table(h // self.patch_size, w // self.patch_size)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x) @ self.proj


class CLIPTorch(nn.Module):
    """OpenAI CLIP layout: `visual.*`, `token_embedding`, `positional_embedding`, `transformer`, `ln_final`,
    `text_projection`, `logit_scale`."""

    def __init__(self, clip_config: dict, rs: dict):
        super().__init__()
        vision, text = clip_config["vision_config"], clip_config["text_config"]
        e = clip_config.get("projection_dim", 512)
        self.visual = VisionTower(vision, rs, e)
        d = text["hidden_size"]
        self.token_embedding = nn.Embedding(text.get("vocab_size", 49408), d)
        self.positional_embedding = nn.Parameter(torch.zeros(text.get("max_position_embeddings", 77), d))
        self.transformer = Transformer(text, rs)
        self.ln_final = nn.LayerNorm(d, eps=text.get("layer_norm_eps", 1e-5))
        self.text_projection = nn.Parameter(torch.zeros(d, e))
        self.logit_scale = nn.Parameter(torch.zeros(()))

    def encode_image(self, images):
        """[B, 3, H, W] normalised images -> [B, 1+P, E]."""
        return self.visual(images)

    def encode_text(self, ids):
        """[N, L] token ids -> [N, E], pooled at the end-of-text (largest id) position."""
        n = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:n]
        x = self.ln_final(self.transformer(x, causal=True))
        return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.text_projection


class ResidualMLP(nn.Module):
    """x + fc2(GELU(fc1(LayerNorm(x)))) (dropout inactive at inference)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.layer_norm(x))))


class GraphConvolution(nn.Module):
    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))

    def forward(self, x, adj):
        return adj @ x @ self.weight


class GCN(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.gc1 = GraphConvolution(1, hidden)
        self.gc2 = GraphConvolution(hidden, 1)

    def forward(self, x, adj):
        return self.gc2(F.relu(self.gc1(x, adj)), adj)


class SFRNetTorch(nn.Module):
    """SFR-Net inference: CLIP + RS adapters -> MEF (global + local evidence) -> GR refining -> logits.

    The class token ids [C, L] and the adjacency [C, C] are non-persistent buffers, so `state_dict()` has
    exactly the reference's keys.
    """

    def __init__(self, sidecar: dict):
        super().__init__()
        model = sidecar["model"]
        sfr = model["sfr"]
        self.sidecar = sidecar
        self.clip_model = CLIPTorch(model["clip"], model["rs"])
        e = model["clip"].get("projection_dim", 512)
        self.use_local = sfr.get("use_local", True)
        self.use_gr = sfr.get("use_gr", True)
        if self.use_local:
            blocks = [ResidualMLP(e, sfr.get("head_hidden", 1024)) for _ in range(sfr.get("head_blocks", 2))]
            self.mlp = nn.Sequential(*blocks, nn.Linear(e, 1))
        if self.use_gr:
            self.gcn_corrector = GCN(sfr.get("gcn_hidden", 64))
        classes = sidecar["classes"]
        self.codes = [c["code"] for c in classes]
        self.seen_ids = [i for i, c in enumerate(classes) if c["seen"]]
        self.unseen_ids = [i for i, c in enumerate(classes) if not c["seen"]]
        self.register_buffer("class_tokens", torch.tensor(sidecar["class_tokens"], dtype=torch.long),
                             persistent=False)
        adjacency = sidecar.get("adjacency")
        if self.use_gr and adjacency is None:
            raise ValueError("the sidecar has no adjacency but the model uses GR")
        self.register_buffer("adjacency", torch.tensor(adjacency if adjacency is not None else [[0.0]],
                                                       dtype=torch.float32), persistent=False)
        self.image_size = int(sidecar.get("image_size", model["clip"]["vision_config"]["image_size"]))
        norm = sidecar.get("normalization", {})
        self.mean = tuple(norm.get("mean", (0.5, 0.5, 0.5)))
        self.std = tuple(norm.get("std", (0.5, 0.5, 0.5)))

    @classmethod
    def from_export(cls, checkpoint: str, sidecar: Optional[str] = None, *, strict: bool = True) -> "SFRNetTorch":
        """Build from an exported reference-layout checkpoint (.pth or .safetensors) and its JSON sidecar."""
        meta = read_sidecar(sidecar or sidecar_path(checkpoint), layout="reference")
        model = cls(meta).eval()
        model.load_state_dict(load_state_dict(checkpoint), strict=strict)
        return model

    @classmethod
    def from_hf_export(cls, folder: str, *, strict: bool = True) -> "SFRNetTorch":
        """Build from an `sfr-jax export --layout hf` folder (needs the `safetensors` package)."""
        from safetensors.numpy import load_file

        side = read_sidecar(os.path.join(folder, "sfr.json"), layout="hf")
        state = hf_to_reference(load_file(os.path.join(folder, "model.safetensors")),
                                load_file(os.path.join(folder, "sfr_extras.safetensors")))
        model = cls(side).eval()
        model.load_state_dict(state, strict=strict)
        return model

    def ids(self, mode: str) -> list:
        """Class indices of a mode: train = seen, zsl = unseen, gzsl = all."""
        if mode == "train":
            return list(self.seen_ids)
        if mode == "zsl":
            return list(self.unseen_ids)
        if mode == "gzsl":
            return list(range(len(self.codes)))
        raise ValueError(f"unknown mode {mode!r}; expected train, zsl or gzsl")

    def text_features(self, class_ids: Sequence[int]):
        """l2-normalised text features [c, E] of the given classes."""
        return F.normalize(self.clip_model.encode_text(self.class_tokens[list(class_ids)]), dim=-1)

    def forward(self, images, mode: str = "gzsl", class_ids: Optional[Sequence[int]] = None,
                with_maps: bool = False):
        """Logits [B, c] of normalised NCHW float images for a mode's classes (or explicit class ids);
        with_maps: (logits, heatmaps [B, c, g, g]), MEF's softmax over the g x g patches per class."""
        ids = list(class_ids) if class_ids is not None else self.ids(mode)
        adj = None
        if self.use_gr:
            idx = torch.tensor(ids, dtype=torch.long, device=self.adjacency.device)
            adj = self.adjacency[idx][:, idx]  # the mode's block, not renormalised
        return self.score_tokens(self.clip_model.encode_image(images), self.text_features(ids), adj, with_maps)

    def score_tokens(self, tokens, text_features, adjacency=None, with_maps: bool = False):
        """Logits [B, c] from image tokens [B, 1+P, E], l2-normalised text features [c, E] and, with GR, the
        classes' adjacency block [c, c]: MEF (global + local evidence), then GR. with_maps: (logits, the
        patch affinities as heatmaps [B, c, g, g]); computed without the MEF head too (plain CLIP's map)."""
        t = text_features
        g = F.normalize(tokens[:, 0], dim=-1)
        scores = g @ t.T
        weights = None
        if self.use_local or with_maps:
            local = F.normalize(tokens[:, 1:], dim=-1)
            weights = (local @ t.T).softmax(dim=1)  # over patches
        if self.use_local:
            scores = scores + self.mlp(weights.transpose(1, 2) @ local)[..., 0]
        if self.use_gr:
            scores = scores + self.gcn_corrector(scores[..., None], adjacency)[..., 0]
        if not with_maps:
            return scores
        side = int(round((tokens.shape[1] - 1) ** 0.5))  # square images: the patch grid's side
        return scores, weights.transpose(1, 2).reshape(weights.shape[0], weights.shape[2], side, side)

    def decide(self, logits, mode: str = "gzsl", class_ids: Optional[Sequence[int]] = None) -> dict:
        """{'prob': [B, c], 'fired': [B, c] bool, 'labels': codes per image, 'normal': [B] bool, 'tiers':
        per image {code: 'confident' or 'review'} of the classes that fire} of the logits of a mode's
        classes, by the sidecar's calibration (probability = sigmoid(a * logit + b), fires at >= threshold,
        confident at >= confident_threshold), else sigmoid and 0.5 and one tier ('review'): the rule of
        sfr_jax.eval.decisions for the model's classes."""
        ids = list(class_ids) if class_ids is not None else self.ids(mode)
        fitted = {c["code"]: c for c in (self.sidecar.get("calibration") or {}).get("classes", [])}
        rows = [fitted.get(self.codes[i]) for i in ids]
        a = torch.tensor([r["platt"]["a"] if r else 1.0 for r in rows], dtype=torch.float64)
        b = torch.tensor([r["platt"]["b"] if r else 0.0 for r in rows], dtype=torch.float64)
        t = torch.tensor([r["threshold"] if r else 0.5 for r in rows], dtype=torch.float64)
        # The confident tier: a record with tiers (null: never confident); none (inf) otherwise.
        tc = torch.tensor([r["confident_threshold"] if r and r.get("confident_threshold") is not None
                           else math.inf for r in rows], dtype=torch.float64)
        prob = torch.sigmoid(logits.detach().double() * a + b)
        fired = prob >= t
        confident = (fired & (prob >= tc)).tolist()
        labels = [[self.codes[i] for i, on in zip(ids, row) if on] for row in fired.tolist()]
        tiers = [{self.codes[i]: ("confident" if sure else "review") for i, on, sure in zip(ids, row, sure_row) if on}
                 for row, sure_row in zip(fired.tolist(), confident)]
        return {"prob": prob, "fired": fired, "labels": labels, "normal": ~fired.any(dim=1), "tiers": tiers}

    def preprocess(self, images_uint8_nhwc):
        """uint8 [B, H, W, 3] at the model's size -> normalised float NCHW."""
        x = images_uint8_nhwc.float().div(255.0).permute(0, 3, 1, 2)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std



class FixedClassNet(nn.Module):
    """An SFRNetTorch for one fixed class set: uint8 [B, S, S, 3] RGB images -> (logits, probabilities) [B, c],
    and with maps=True a third output, the heatmaps [B, c, g, g] (MEF's patch affinities).

    The classes' text features [c, E], their adjacency block [c, c] and the calibration (probability =
    sigmoid(scale * logit + shift), per class) are buffers, so neither the text tower nor a tokenizer runs.
    This is the graph `sfr-jax export --format onnx` writes.
    """

    def __init__(self, net: SFRNetTorch, text_features, adjacency=None, scale=None, shift=None, maps: bool = False):
        super().__init__()
        self.maps = bool(maps)
        c = len(text_features)
        if net.use_gr and adjacency is None:
            raise ValueError("the model uses GR: pass the classes' adjacency block")
        self.net = net
        as_buffer = lambda x: torch.tensor(x, dtype=torch.float32)  # a copy: the caller's array may be read-only
        self.register_buffer("text_features", as_buffer(text_features))
        self.register_buffer("adjacency_block", as_buffer(adjacency) if net.use_gr else None)
        self.register_buffer("scale", as_buffer(scale if scale is not None else [1.0] * c))
        self.register_buffer("shift", as_buffer(shift if shift is not None else [0.0] * c))

    def forward(self, images):
        tokens = self.net.clip_model.encode_image(self.net.preprocess(images))
        if self.maps:
            logits, maps = self.net.score_tokens(tokens, self.text_features, self.adjacency_block, with_maps=True)
            return logits, torch.sigmoid(logits * self.scale + self.shift), maps
        logits = self.net.score_tokens(tokens, self.text_features, self.adjacency_block)
        return logits, torch.sigmoid(logits * self.scale + self.shift)

def load_state_dict(path: str) -> dict:
    """A state_dict from .pth (torch.load, weights only) or .safetensors (needs the `safetensors` package)."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}


def hf_to_reference(clip_state: dict, extras: dict) -> dict:
    """A transformers CLIPModel state + our sfr_extras (numpy) -> the reference layout this module loads
    (torch tensors), through the name tables of sfr_jax.convert.names."""
    flat = {f"clip.{k}": v for k, v in names.HF.to_ours(clip_state).items()}
    flat.update(names.HF_EXTRAS.to_ours(extras))
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in names.to_reference(flat).items()}
