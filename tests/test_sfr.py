"""SFR-Net vs a PyTorch re-computation of SPEC §3-§4 on a tiny random Hugging Face CLIP; trainable
parameter count; a jitted SCL gradient that touches only the trainable parameters."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from sfr_jax.convert.hf import load_hf_clip
from sfr_jax.models.store import assign_params
from sfr_jax.models.clip import CLIP, CLIPConfig
from sfr_jax.models.graph import adjacency as build_adjacency
from sfr_jax.models.rs import RSConfig
from sfr_jax.infer.model import count
from sfr_jax.models.sfr import TRAINABLE, Adjacency, ClassTokens, SFRConfig, SFRNet, build_sfr
from sfr_jax.text.classes import sewerml
from sfr_jax.text.tokenizer import ClipTokenizer
from sfr_jax.train.loss import scl_loss
from tiny_clip import make_tiny_hf_clip

RS = RSConfig(bottleneck_dim=8)
HEAD_HIDDEN = 40  # distinct from every frozen weight's shape, for the jaxpr check below
FROZEN = nnx.All(nnx.Param, nnx.Not(TRAINABLE))  # every weight that does not train: the frozen CLIP


def count_trainable(model):
    """Trainable scalars, counted as the training loop logs them; works on an nnx.eval_shape model."""
    return count(nnx.state(model, TRAINABLE))


def test_trainable_count_vit_b16_17_classes():
    tokens = np.zeros((17, 8), np.int32)
    tokens[:, 0], tokens[:, 5] = 49406, 49407
    eye = np.eye(17, dtype=np.float32)
    model = nnx.eval_shape(lambda: build_sfr(CLIPConfig.vit_b16(), SFRConfig(), tokens, eye, rngs=nnx.Rngs(0)))
    assert count_trainable(model) == 6_053_505  # abstract model: no weight is materialised
    assert isinstance(model.adjacency, Adjacency) and isinstance(model.class_tokens, ClassTokens)
    # Table 3 ablations on the tiny config: RS off leaves head + GCN, local path off drops the head,
    # GR off drops the GCN (2 * (1 * 64) weights)
    tiny_cfg = CLIPConfig.tiny()
    count = lambda cfg: count_trainable(nnx.eval_shape(lambda: build_sfr(tiny_cfg, cfg, tokens, eye,
                                                                          rngs=nnx.Rngs(0))))
    d, h = tiny_cfg.projection_dim, 1024
    head = 2 * (2 * d + d * h + h + h * d + d) + d + 1
    full = count(SFRConfig())
    assert count(SFRConfig(rs=RSConfig(enabled=False))) == head + 128
    assert count(SFRConfig(use_local=False)) == full - head
    assert count(SFRConfig(use_gr=False)) == full - 128


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(our SFR-Net pieces, the HF torch CLIP with the same adapters hooked in, tokens, images)."""
    path = make_tiny_hf_clip(str(tmp_path_factory.mktemp("hf")))
    config, flat = load_hf_clip(path)
    hf = transformers.CLIPModel.from_pretrained(path).eval()
    clip = CLIP(config, RS, rngs=nnx.Rngs(1))
    assign_params(clip, flat)
    rng = np.random.default_rng(0)
    # give the adapters non-zero weights (they start at zero) and copy them into torch hooks
    for tower, layers in (("vision_model", hf.vision_model.encoder.layers), ("text_model", hf.text_model.encoder.layers)):
        for i, layer in enumerate(layers):
            ad = getattr(clip, tower).encoder.layers[i].adapter
            ad.up.kernel.set_value(jnp.asarray(rng.normal(0, 0.3, ad.up.kernel.shape), jnp.float32))
            ad.up.bias.set_value(jnp.asarray(rng.normal(0, 0.1, ad.up.bias.shape), jnp.float32))
            down_w, down_b = (torch.tensor(np.array(ad.down.kernel[...]).T), torch.tensor(np.array(ad.down.bias[...])))
            up_w, up_b = torch.tensor(np.array(ad.up.kernel[...]).T), torch.tensor(np.array(ad.up.bias[...]))

            def hook(module, inputs, output, p=(down_w, down_b, up_w, up_b)):
                h = torch.nn.functional.gelu(inputs[0] @ p[0].T + p[1])  # x + mlp(h) + adapter(h)
                return output + h @ p[2].T + p[3]

            layer.mlp.register_forward_hook(hook)
    tok = ClipTokenizer.default()
    classes = sewerml()
    return dict(clip=clip, hf=hf, class_tokens=tok.encode(classes.descriptions),
                phrase_tokens=tok.encode(classes.phrases), classes=classes,
                images=rng.normal(size=(2, 32, 32, 3)).astype(np.float32))


def torch_sfr(hf, head, gcn, images, tokens, adj, use_local=True, use_gr=True):
    """SPEC §3-§4 in torch on the HF CLIP: all image tokens post-LN + projected, text at EOT."""
    with torch.no_grad():
        x = torch.tensor(images).permute(0, 3, 1, 2)
        feats = hf.visual_projection(hf.vision_model.post_layernorm(hf.vision_model(pixel_values=x).last_hidden_state))
        ids = torch.tensor(tokens, dtype=torch.long)
        text = hf.text_projection(hf.text_model(input_ids=ids).pooler_output)
        t = torch.nn.functional.normalize(text, dim=-1)
        g = torch.nn.functional.normalize(feats[:, 0], dim=-1)
        loc = torch.nn.functional.normalize(feats[:, 1:], dim=-1)
        s = g @ t.T
        if use_local:
            w = (loc @ t.T).softmax(dim=1)
            s = s + head(w.transpose(1, 2) @ loc).squeeze(-1)
        if use_gr:
            a = torch.tensor(adj)
            s = s + (a @ torch.relu(a @ s[..., None] @ gcn[0]) @ gcn[1])[..., 0]
        return s.numpy()


def torch_head(model):
    """The reference's nn.Sequential(ResidualMLP, ResidualMLP, Linear) with our head's weights."""
    class Block(torch.nn.Module):
        def __init__(self, b):
            super().__init__()
            d, h = b.fc1.kernel.shape
            self.ln, self.fc1, self.fc2 = torch.nn.LayerNorm(d), torch.nn.Linear(d, h), torch.nn.Linear(h, d)
            for tm, ours, w in ((self.ln, b.layer_norm, "scale"), (self.fc1, b.fc1, "kernel"), (self.fc2, b.fc2, "kernel")):
                weight = np.array(getattr(ours, w)[...])
                tm.weight.data = torch.tensor(weight.T if w == "kernel" else weight)
                tm.bias.data = torch.tensor(np.array(ours.bias[...]))

        def forward(self, x):
            return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln(x))))

    out = torch.nn.Linear(*model.head.out.kernel.shape)
    out.weight.data = torch.tensor(np.array(model.head.out.kernel[...]).T)
    out.bias.data = torch.tensor(np.array(model.head.out.bias[...]))
    return torch.nn.Sequential(*[Block(b) for b in model.head.blocks], out)


def set_random_trainables(model, seed):
    """Non-trivial head/GCN weights (LayerNorm affine and biases too) so every term shows."""
    rng = np.random.default_rng(seed)
    state = nnx.state(model, nnx.All(nnx.Param, nnx.Any(nnx.PathContains("head"), nnx.PathContains("gcn"))))
    for path, v in nnx.to_flat_state(state):
        shape = v.get_value().shape
        base = 1.0 if path[-1] == "scale" else 0.0
        v.set_value(jnp.asarray(base + rng.normal(0, 0.3, shape), jnp.float32))
    nnx.update(model, state)


@pytest.mark.parametrize("use_local,use_gr", [(True, True), (False, False)])
def test_logits_match_torch_recomputation(tiny, use_local, use_gr):
    cls = tiny["classes"]
    # a threshold with real edges on this random tiny text encoder: the median off-diagonal cosine,
    # nudged to the middle of the largest nearby gap so float noise cannot flip an edge
    hf = tiny["hf"]
    with torch.no_grad():
        pt = hf.text_projection(hf.text_model(input_ids=torch.tensor(tiny["phrase_tokens"], dtype=torch.long)).pooler_output)
    cos = torch.nn.functional.normalize(pt, dim=-1)
    cos = np.sort((cos @ cos.T).numpy()[~np.eye(17, dtype=bool)])
    mid = len(cos) // 2
    j = mid + int(np.argmax(np.diff(cos[mid - 20: mid + 20]))) - 20
    threshold = float(cos[j] + cos[j + 1]) / 2
    cfg = SFRConfig(rs=RS, use_local=use_local, use_gr=use_gr, head_hidden=HEAD_HIDDEN, adjacency_threshold=threshold)
    model = SFRNet(tiny["clip"], cfg, tiny["class_tokens"], phrase_tokens=tiny["phrase_tokens"], rngs=nnx.Rngs(2))
    model.eval()
    if use_gr:  # adjacency computed by our text encoder = the torch recipe on HF text features
        a_t = pt.numpy()
        want_a = build_adjacency(a_t, threshold)
        np.testing.assert_allclose(np.asarray(model.adjacency[...]), want_a, atol=1e-6)
        assert np.count_nonzero(want_a - np.diag(np.diag(want_a))) > 0
    set_random_trainables(model, 3)
    head = torch_head(model) if use_local else None
    gcn = (torch.tensor(np.array(model.gcn.gc1.weight[...])), torch.tensor(np.array(model.gcn.gc2.weight[...]))) if use_gr else None
    a = np.asarray(model.adjacency[...]) if use_gr else None
    modes = ("train", "zsl", "gzsl")

    @nnx.jit
    def all_modes(m, x):  # one compilation for the three modes and the precomputed-text path
        out = {mode: m(x, cls.ids(mode)) for mode in modes}
        ids = cls.ids("gzsl")
        out["precomputed"] = m(x, ids, m.text_features(ids))
        return out

    got = all_modes(model, tiny["images"])
    for mode in modes:
        ids = cls.ids(mode)
        sub = a[np.ix_(ids, ids)] if use_gr else None  # sliced, not renormalised
        want = torch_sfr(hf, head, gcn, tiny["images"], tiny["class_tokens"][list(ids)], sub, use_local, use_gr)
        assert got[mode].shape == (len(tiny["images"]), len(ids))
        np.testing.assert_allclose(np.asarray(got[mode]), want, rtol=1e-4, atol=2e-5, err_msg=mode)
    # precomputed text features (text encoded once per evaluation) give the same logits
    np.testing.assert_allclose(np.asarray(got["precomputed"]), np.asarray(got["gzsl"]), rtol=1e-5, atol=1e-6)


def _dot_output_shapes(jaxpr):
    """Output shapes of every dot_general / conv in a jaxpr, nested sub-jaxprs included."""
    shapes = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
            shapes.extend(tuple(v.aval.shape) for v in eqn.outvars)
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    shapes.extend(_dot_output_shapes(inner))
    return shapes


def test_jitted_scl_grad_touches_only_trainable_params(tiny):
    cls = tiny["classes"]
    cfg = SFRConfig(rs=RS, head_hidden=HEAD_HIDDEN)
    model = SFRNet(tiny["clip"], cfg, tiny["class_tokens"], phrase_tokens=tiny["phrase_tokens"], rngs=nnx.Rngs(4))
    model.eval()
    graphdef, trainable, frozen, rest = nnx.split(model, TRAINABLE, FROZEN, ...)
    ids = cls.ids("train")
    labels = np.zeros((2, len(ids)), np.float32)
    labels[0, 2] = labels[1, 5] = 1

    def loss(trainable, frozen, rest, images, labels):
        return scl_loss(nnx.merge(graphdef, trainable, frozen, rest)(images, ids), labels)

    grad_fn = jax.jit(jax.grad(loss))  # argnums=0: the trainable parameters only
    grads = grad_fn(trainable, frozen, rest, tiny["images"], labels)
    paths = [p for p, _ in nnx.to_flat_state(grads)]
    assert paths == [p for p, _ in nnx.to_flat_state(trainable)]
    assert all(("adapter" in p) or p[0] in ("head", "gcn") for p in paths)
    assert any("vision_model" in p for p in paths) and any("text_model" in p for p in paths)
    leaves = [np.asarray(g) for g in jax.tree.leaves(grads)]
    assert all(np.all(np.isfinite(g)) for g in leaves) and sum(float(np.abs(g).sum()) for g in leaves) > 0

    # No weight gradient of a frozen matrix is ever formed: no matmul/conv in the differentiated
    # program outputs a frozen kernel's shape. The same check finds them when differentiating w.r.t.
    # the frozen weights too, so it can fail.
    trainable_shapes = {tuple(v.get_value().shape) for _, v in nnx.to_flat_state(trainable)}
    frozen_kernels = {tuple(v.get_value().shape) for p, v in nnx.to_flat_state(frozen)
                      if p[-1] == "kernel"} - trainable_shapes
    args = (trainable, frozen, rest, tiny["images"], labels)
    only_trainable = _dot_output_shapes(jax.make_jaxpr(jax.grad(loss))(*args).jaxpr)
    with_frozen = _dot_output_shapes(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(*args).jaxpr)
    either = lambda shapes: set(shapes) | {tuple(reversed(x)) for x in shapes}  # W or W^T
    assert not frozen_kernels & either(only_trainable)
    assert frozen_kernels <= either(with_frozen)


def test_adjacency_is_state_and_can_be_recomputed(tiny):
    cfg = SFRConfig(rs=RS, head_hidden=HEAD_HIDDEN, adjacency_threshold=0.0)
    with pytest.raises(ValueError, match="pass the adjacency, or phrase_tokens"):
        SFRNet(tiny["clip"], cfg, tiny["class_tokens"], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"adjacency has shape \(3, 3\), expected \(17, 17\)"):
        SFRNet(tiny["clip"], cfg, tiny["class_tokens"], np.eye(3), rngs=nnx.Rngs(0))
    model = SFRNet(tiny["clip"], cfg, tiny["class_tokens"], np.eye(17, dtype=np.float32), rngs=nnx.Rngs(0))
    state = nnx.state(model, Adjacency)
    assert len(jax.tree.leaves(state)) == 1 and not jax.tree.leaves(nnx.state(model, nnx.All(Adjacency, nnx.Param)))
    assert not any("adjacency" in p or "class_tokens" in p for p, _ in nnx.to_flat_state(nnx.state(model, TRAINABLE)))
    model.refresh_adjacency(tiny["phrase_tokens"])  # from the CURRENT text encoder
    np.testing.assert_allclose(np.asarray(model.adjacency[...]),
                               np.asarray(model.compute_adjacency(tiny["phrase_tokens"])))
    assert not np.allclose(np.asarray(model.adjacency[...]), np.eye(17))
