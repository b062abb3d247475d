"""Throughput, compile time, memory and FLOPs of the REAL SFR-Net train and eval steps (sfr_jax.train.steps).

    python benchmarks/train_step.py --batch 8 --steps 3                    # fp32 on this machine
    python benchmarks/train_step.py --batch 256 --dtypes float32,bfloat16 --attention cudnn   # a GPU
    python benchmarks/train_step.py --batch 8 --reference ../ref --reference-python ../refvenv/bin/python

Full ViT-B/16 SFR-Net with random weights, 17 Sewer-ML classes: a seen-class train step (value_and_grad
over the trainable dict only, AdamW, donation) and a GZSL eval step whose text features are computed once.
Batches are device-resident unless --host-input (then fed from numpy every step, as the training loop does).
Not a test: it prints figures. See benchmarks/README.md for the method and the latest numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sfr_jax import topology  # noqa: E402

topology.leave_out_absent_tpu()  # before JAX starts: no libtpu warnings on a machine without TPU chips
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from sfr_jax import parallel  # noqa: E402
from sfr_jax import config as config_lib  # noqa: E402
from sfr_jax.infer import model as model_lib  # noqa: E402
from sfr_jax.infer import steps as infer_steps  # noqa: E402
from sfr_jax.models.clip import CLIP, CLIPConfig, Runtime  # noqa: E402
from sfr_jax.models.sfr import TRAINABLE, SFRNet  # noqa: E402
from sfr_jax.text.tokenizer import ClipTokenizer  # noqa: E402
from sfr_jax.train import optim, steps  # noqa: E402
from sfr_jax.train.run import state_shardings  # noqa: E402
from sfr_jax.train.flops import function_flops  # noqa: E402

PEAK_BF16 = {"H100": 989e12, "H200": 989e12}  # dense bf16 TFLOP/s of the SXM parts (datasheet)


def log(msg=""):
    print(msg, flush=True)


def class_tokens(path: str | None):
    """(class set, description ids [17, L], phrase ids [17, L']) with our tokenizer, or from an .npz cache."""
    class_set = model_lib.ModelSpec.from_config(config_lib.base_config()).load_classes()
    if path and os.path.exists(path):
        z = np.load(path)
        return class_set, z["descriptions"], z["phrases"]
    tok = ClipTokenizer.default()
    desc, phr = tok.encode(list(class_set.descriptions)), tok.encode(list(class_set.phrases))
    if path:
        np.savez(path, descriptions=desc, phrases=phr)
    return class_set, desc, phr


def build_parts(args, dtype: str, tokens) -> tuple:
    """(config, ModelParts as run, ModelParts with unrolled layers for FLOP counting) of a random-weight
    ViT-B/16 SFR-Net, split exactly as sfr_jax.infer.model.build_parts does. Both share the same arrays."""
    config = config_lib.base_config()
    config.train.global_batch = args.batch
    config.loss.group_size = 0
    config.model.dtype = dtype
    class_set, desc, phr = tokens
    sc = model_lib.ModelSpec.from_config(config).sfr
    clip_cfg = CLIPConfig.tiny() if args.tiny else CLIPConfig.vit_b16()
    runtime = Runtime(dtype=model_lib.DTYPES[dtype], remat=args.remat,
                      attention_impl=args.attention if dtype != "float32" or args.attention != "cudnn" else "xla")
    clip = CLIP(clip_cfg, sc.rs, image_size=args.image_size, runtime=runtime, rngs=nnx.Rngs(params=0, dropout=1))
    model = SFRNet(clip, sc, desc, None, phrase_tokens=phr, rngs=nnx.Rngs(params=0, dropout=1))
    # Adapters' `up` starts at zero: make it non-trivial so that the fp32/bf16 parity means something.
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        names = [str(p) for p in path]
        if "adapter" in names and "up" in names:
            key = jax.random.fold_in(jax.random.key(7), zlib.crc32("/".join(names).encode()) & 0x7FFFFFFF)
            var.set_value(0.02 * jax.random.normal(key, var.get_value().shape, jnp.float32))

    def split(scan: bool):
        for encoder in (model.clip.vision_model.encoder, model.clip.text_model.encoder):
            encoder.scan = scan  # static: only the graph definition changes
        model.eval()
        eval_def = nnx.graphdef(model)
        model.train()
        train_def, trainable, frozen = nnx.split(model, TRAINABLE, ...)
        return model_lib.ModelParts(train_def, eval_def, nnx.to_pure_dict(trainable), frozen, class_set, None, phr)

    # XLA's cost analysis counts a while loop's body once: FLOPs are read off the unrolled program.
    unrolled = split(False)
    return config, split({"auto": None, "scan": True, "unrolled": False}[args.layers]), unrolled


def median_time(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_rate(dtype, n: int, reps: int = 5) -> float:
    """FLOP/s of one large [n,n]@[n,n] product in `dtype` on the default device (random data)."""
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.random.normal(k1, (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(k2, (n, n), jnp.float32).astype(dtype)
    f = jax.jit(lambda a, b: a @ b)
    jax.block_until_ready(f(a, b))
    return 2 * n ** 3 / median_time(lambda: f(a, b), reps)


def flops_of(stage) -> float:
    """XLA cost-analysis FLOPs of a lowered (whole program) or compiled (per device) stage; nan if none."""
    try:
        cost = stage.cost_analysis()
    except Exception:
        return float("nan")
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def count_flops(fn, *args) -> tuple:
    """(XLA cost-analysis FLOPs of the lowered program, matmul FLOPs of its jaxpr)."""
    return flops_of(fn.lower(*args)), function_flops(fn, *args)


def memory_of(compiled) -> float:
    """Bytes the compiled program needs per device: arguments + outputs + temporaries - donated."""
    try:
        m = compiled.memory_analysis()
        return float(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                     - m.alias_size_in_bytes)
    except Exception:  # not every backend reports it
        return float("nan")


def device_peak() -> float:
    try:
        return float(jax.devices()[0].memory_stats()["peak_bytes_in_use"])
    except Exception:
        return float("nan")


def bench_dtype(args, dtype: str, tokens, mesh) -> dict:
    """Compile and time the real train step, the forward, and the GZSL eval step in `dtype`."""
    config, parts, unrolled = build_parts(args, dtype, tokens)
    B, size = args.batch, args.image_size
    tx = optim.make_optimizer(optim.OptimConfig.from_config(config), 1000)
    loss_config, norm = steps.LossConfig.from_config(config), (config.data.mean, config.data.std)
    opt_shapes = jax.eval_shape(tx.init, parts.trainable)
    sh = state_shardings(mesh, parts.trainable, opt_shapes, parts.frozen)
    trainable = parallel.place(parts.trainable, sh["trainable"])
    opt_state = jax.jit(tx.init, out_shardings=sh["opt_state"])(trainable)
    frozen = parallel.place(parts.frozen, sh["frozen"])
    rng = np.random.default_rng(0)
    host = {"image": rng.integers(0, 256, (B, size, size, 3), dtype=np.uint8),  # as the pipelines yield
            "labels": (rng.random((B, parts.class_set.num_classes)) < 0.2).astype(np.float32)}
    host["labels"][:, 0] = 1
    batch = parallel.host_to_global(host, mesh)
    key = jax.random.key(0)
    r = {"dtype": dtype}

    train_step = steps.make_train_step(parts, tx, loss_config, norm, mesh, sh)
    t, c = time.perf_counter(), time.process_time()
    lowered = train_step.lower(trainable, opt_state, frozen, batch, np.int32(0), key)
    r["train_trace_s"] = time.perf_counter() - t
    compiled = lowered.compile()
    r["train_compile_s"] = time.perf_counter() - t
    r["train_compile_cpu_s"] = time.process_time() - c
    flop_step = steps.make_train_step(unrolled, tx, loss_config, norm, mesh, sh)
    r["train_flops_xla"], r["train_flops_mm"] = count_flops(flop_step, trainable, opt_state, frozen, batch,
                                                            np.int32(0), key)
    r["train_mem"] = memory_of(compiled)

    state = {"t": trainable, "o": opt_state, "step": 0}

    def one_step(b=None):
        state["t"], state["o"], metrics = compiled(state["t"], state["o"], frozen, b or batch,
                                                   np.int32(state["step"]), key)
        state["step"] += 1
        return metrics["loss"]

    loss = float(one_step())  # warm-up (first run allocates)
    r["train_loss0"] = loss
    r["train_s"] = median_time(one_step, args.steps)
    r["train_ips"] = B / r["train_s"]
    if args.host_input:  # the training loop's pattern: uint8 numpy batches sent ahead, loss read 1 step late
        t = time.perf_counter()
        pending = None
        for g in parallel.prefetch_to_device((host for _ in range(args.steps)), mesh, config.data.device_prefetch):
            out = one_step(g)
            if pending is not None:
                float(pending)
            pending = out
        float(pending)
        r["train_host_ips"] = B * args.steps / (time.perf_counter() - t)

    # Forward of the same loss (train ids, text encoded inside, eval mode): the denominator of the ratio.
    train_ids = tuple(parts.class_set.seen_ids)

    def forward(trainable, frozen, images):
        images = infer_steps.normalise(images, config.data.mean, config.data.std)
        return unrolled.merge(trainable, frozen)(images, train_ids)

    r["forward_flops_xla"], r["forward_flops_mm"] = count_flops(jax.jit(forward), state["t"], frozen, batch["image"])

    # GZSL eval: text features once (timed separately), then the eval step per batch.
    all_ids = tuple(range(parts.class_set.num_classes))
    text_fn = infer_steps.make_text_features(parts, mesh, sh)
    norm = (config.data.mean, config.data.std)
    eval_step = infer_steps.make_eval_step(parts, mesh, sh, {"gzsl": all_ids}, *norm)
    t = time.perf_counter()
    text = {"gzsl": text_fn(state["t"], frozen, all_ids)}
    jax.block_until_ready(text)
    r["text_first_s"] = time.perf_counter() - t
    r["text_s"] = median_time(lambda: text_fn(state["t"], frozen, all_ids), max(2, args.steps))
    t = time.perf_counter()
    ecompiled = eval_step.lower(state["t"], frozen, batch["image"], text).compile()
    r["eval_compile_s"] = time.perf_counter() - t
    unrolled_eval = infer_steps.make_eval_step(unrolled, mesh, sh, {"gzsl": all_ids}, *norm)
    r["eval_flops_xla"], r["eval_flops_mm"] = count_flops(unrolled_eval, state["t"], frozen, batch["image"], text)
    for name in ("train", "forward", "eval"):  # XLA's count where the backend gives one, else the matmul count
        xla = r[f"{name}_flops_xla"]
        r[f"{name}_flops"] = xla if np.isfinite(xla) else r[f"{name}_flops_mm"]
    r["eval_mem"] = memory_of(ecompiled)
    logits = ecompiled(state["t"], frozen, batch["image"], text)["gzsl"]
    r["logits"] = np.asarray(logits, np.float32)
    r["text"] = np.asarray(text["gzsl"], np.float32)
    n = min(B, 16)
    encode = jax.jit(lambda t, f, x: parts.merge(t, f).clip.encode_image(infer_steps.normalise(x, *norm)))
    r["image_tokens"] = np.asarray(encode(state["t"], frozen, batch["image"][:n]), np.float32)
    r["eval_s"] = median_time(lambda: ecompiled(state["t"], frozen, batch["image"], text), args.steps)
    r["eval_ips"] = B / r["eval_s"]
    r["device_peak"] = device_peak()
    # Kept for timing side by side with the reference (not written to --json).
    r["train_fn"] = lambda: median_time(one_step, args.steps)
    r["eval_fn"] = lambda: median_time(lambda: ecompiled(state["t"], frozen, batch["image"], text), args.steps)
    if args.profile:
        profile_step(one_step)
    return r


def profile_step(one_step, top: int = 25) -> None:
    """Trace one train step and print where the time goes, by XLA op (host and device events)."""
    import collections
    import glob
    import gzip
    import tempfile

    d = tempfile.mkdtemp()
    with jax.profiler.trace(d, create_perfetto_trace=True):
        jax.block_until_ready(one_step())
    events = json.load(gzip.open(glob.glob(d + "/**/*.json.gz", recursive=True)[0]))
    events = events["traceEvents"] if isinstance(events, dict) else events
    total = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and not str(e.get("name", "")).startswith(("$", "Thunk", "PjitFunction")):
            total[e["name"]] += e.get("dur", 0)
    log("  profile of one train step (op: ms):")
    for name, us in total.most_common(top):
        log(f"    {us / 1e3:9.2f}  {name[:100]}")


def run_reference(args, what: str) -> float:
    """Seconds per step of the reference (ref_sfr.py time-train/time-eval, fp32, CPU), same batch."""
    tool = args.reference_tool or os.path.join(ROOT, "..", "shared", "tools", "ref_sfr.py")
    cmd = [args.reference_python, tool, "--ref", args.reference, what, "--batch", str(args.batch),
           "--steps", str(args.reference_steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"reference {what} failed ({' '.join(cmd)}):\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="timed steps (median)")
    ap.add_argument("--dtypes", default="", help="comma-separated; default float32 on CPU, float32,bfloat16 else")
    ap.add_argument("--attention", default="auto", choices=["auto", "einsum", "xla", "cudnn"],
                    help="attention (auto: cudnn for bf16 on NVIDIA GPUs, else einsum; cudnn+fp32 runs xla)")
    ap.add_argument("--remat", default="none", choices=["none", "block", "dots"],
                    help="rematerialise each encoder block in the backward pass (memory for compute)")
    ap.add_argument("--layers", default="auto", choices=["auto", "scan", "unrolled"],
                    help="encoder layers as a lax.scan or unrolled (auto: the default, scan on CPU in train mode)")
    ap.add_argument("--profile", action="store_true", help="print the train step's 25 costliest ops (profiler)")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--tiny", action="store_true", help="tiny CLIP (smoke test only)")
    ap.add_argument("--host-input", action="store_true", help="also time with numpy batches fed every step")
    ap.add_argument("--matmul", type=int, default=0, help="matmul size for the ceiling (default 2048 CPU, 8192)")
    ap.add_argument("--tokens", default="", help="npz cache of the class token ids (for machines without BPE)")
    ap.add_argument("--reference", default="", help="reference SFR-Net folder: also time it (CPU, fp32)")
    ap.add_argument("--reference-python", default=sys.executable)
    ap.add_argument("--reference-tool", default="", help="ref_sfr.py (default ../shared/tools/ref_sfr.py)")
    ap.add_argument("--reference-steps", type=int, default=3)
    ap.add_argument("--reference-rounds", type=int, default=2, help="alternations of ours and the reference")
    ap.add_argument("--json", default="", help="write the figures here too")
    args = ap.parse_args(argv)
    args.remat = None if args.remat == "none" else args.remat

    dev = jax.devices()[0]
    on_cpu = dev.platform == "cpu"
    dtypes = [d for d in (args.dtypes or ("float32" if on_cpu else "float32,bfloat16")).split(",") if d]
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    log(f"device: {dev.device_kind} x{jax.device_count()} ({dev.platform}), jax {jax.__version__}, "
        f"host cores {os.cpu_count()}, load average {load:.2f}, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    log(f"model: {'tiny' if args.tiny else 'ViT-B/16'} SFR-Net, 17 classes (12 seen), batch {args.batch}, "
        f"image {args.image_size}, attention {args.attention}, remat {args.remat or 'none'}, "
        f"layers {args.layers}")
    mesh = parallel.make_mesh()
    tokens = class_tokens(args.tokens or None)
    log(f"text context: {tokens[1].shape[1]} tokens (descriptions), {tokens[2].shape[1]} (phrases); reference 77")

    results = {}
    for dtype in dtypes:
        mm_dtype = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
        n = args.matmul or (2048 if on_cpu else 8192)
        rate = matmul_rate(mm_dtype, n)
        try:
            r = bench_dtype(args, dtype, tokens, mesh)
        except Exception as error:  # one failing variant must not hide the others' figures
            log(f"\n[{dtype}] FAILED: {type(error).__name__}: {str(error)[:400]}")
            continue
        r["matmul_flops_s"] = rate
        results[dtype] = r
        B = args.batch
        log(f"\n[{dtype}] matmul {n}^3: {rate / 1e12:.3f} TFLOP/s")
        log(f"  train: {r['train_ips']:.2f} images/s ({r['train_s'] * 1e3:.1f} ms/step), compile "
            f"{r['train_compile_s']:.1f}s (trace {r['train_trace_s']:.1f}s; {r['train_compile_cpu_s']:.1f}s CPU), "
            f"memory {r['train_mem'] / 2**30:.2f} GiB (compiled), loss {r['train_loss0']:.4f}")
        if "train_host_ips" in r:
            log(f"  train fed from host numpy every step: {r['train_host_ips']:.2f} images/s")
        tf, ff = r["train_flops"] / B, r["forward_flops"] / B
        src = "XLA cost analysis" if np.isfinite(r["train_flops_xla"]) else "matmul count (no XLA cost analysis)"
        log(f"  FLOPs/image ({src}): train {tf / 1e9:.2f} G, forward {ff / 1e9:.2f} G, ratio {tf / ff:.2f}x; "
            f"eval {r['eval_flops'] / B / 1e9:.2f} G")
        log(f"  matmul FLOPs/image (jaxpr): train {r['train_flops_mm'] / B / 1e9:.2f} G, forward "
            f"{r['forward_flops_mm'] / B / 1e9:.2f} G, ratio {r['train_flops_mm'] / r['forward_flops_mm']:.2f}x")
        ach = r["train_flops"] / r["train_s"]
        log(f"  train achieved {ach / 1e12:.3f} TFLOP/s = {ach / rate:.1%} of the matmul")
        for name, peak in PEAK_BF16.items():
            if name in dev.device_kind and dtype == "bfloat16":
                log(f"  MFU (model FLOPs / {peak / 1e12:.0f} TFLOP/s dense bf16): {ach / peak:.1%}")
                r["mfu"] = ach / peak
        eff = r["eval_flops"] / r["eval_s"]
        log(f"  eval (gzsl): {r['eval_ips']:.2f} images/s ({r['eval_s'] * 1e3:.1f} ms/batch), compile "
            f"{r['eval_compile_s']:.1f}s, memory {r['eval_mem'] / 2**30:.2f} GiB, {eff / rate:.1%} of the matmul; "
            f"text features once: {r['text_s'] * 1e3:.1f} ms")
        if not np.isnan(r["device_peak"]):
            log(f"  device peak memory in use: {r['device_peak'] / 2**30:.2f} GiB")
    if "float32" in results and "bfloat16" in results:
        a, b = results["float32"]["logits"], results["bfloat16"]["logits"]
        rel = float(np.linalg.norm(b - a) / np.linalg.norm(a))
        log(f"\nfp32 vs bf16 eval logits: relative error {rel:.2e}, max abs {np.abs(b - a).max():.3e} "
            f"(|logits| max {np.abs(a).max():.3f})")
        results["parity_rel"] = rel
        for name in ("image_tokens", "text"):
            a, b = results["float32"][name], results["bfloat16"][name]
            rel = np.linalg.norm(b - a) / np.linalg.norm(a)
            log(f"fp32 vs bf16 {name.replace('_', ' ')}: relative error {rel:.2e}")
        a, b = results["float32"]["logits"], results["bfloat16"]["logits"]
        agree = np.mean(np.argsort(-a, 1)[:, :3] == np.argsort(-b, 1)[:, :3])
        log(f"fp32 vs bf16 logits: |diff| max {np.abs(b - a).max():.2e} vs logit spread (std) {a.std():.2e}; "
            f"top-3 class agreement {agree:.1%}")

    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump({k: ({kk: vv for kk, vv in v.items() if np.ndim(vv) == 0 and not callable(vv)}
                           if isinstance(v, dict) else v)
                       for k, v in results.items()}, f, indent=1, default=float)
        os.replace(args.json + ".tmp", args.json)
    if args.reference:
        # A shared machine's load drifts by minutes: each round times ours and then the reference, and
        # the speedup is the median of the rounds' ratios.
        ours = results.get("float32") or next(iter(results.values()))
        ratios = {"train": [], "eval": []}
        log(f"\nside by side with the reference (PyTorch, fp32, CPU, batch {args.batch}), "
            f"{args.reference_rounds} round(s):")
        for i in range(args.reference_rounds):
            for what in ("train", "eval"):
                load = os.getloadavg()[0]
                mine = ours[f"{what}_fn"]()
                ref = run_reference(args, f"time-{what}")
                ratios[what].append(ref / mine)
                log(f"  round {i + 1} {what}: ours {args.batch / mine:.2f} images/s ({mine * 1e3:.0f} ms), reference "
                    f"{args.batch / ref:.2f} images/s ({ref * 1e3:.0f} ms), ratio {ref / mine:.2f}x, "
                    f"load average {load:.2f}")
        log(f"train speedup vs reference: {statistics.median(ratios['train']):.2f}x")
        log(f"eval speedup vs reference: {statistics.median(ratios['eval']):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
