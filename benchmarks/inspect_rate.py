"""Throughput of `sfr-jax inspect` on a 720x576 synthetic inspection video: decode side, and with --model the
whole of inspect beside the model's eval step alone, measured in one run.

    python benchmarks/inspect_rate.py [--seconds 20] [--fps 25] [--codec h264|mpeg2|mpeg4] [--image-size 224]
    python benchmarks/inspect_rate.py --model vit_b16 --seconds 30 --fps 5 --batch 32
    python benchmarks/inspect_rate.py --model vit_b16 --batch 32 --distance ocr   # inspect with and without OCR

Three rates, each over the whole video, best of --repeats:
  decode       inspection.video.Reader at every frame: demux, decode, RGB conversion
  decode 1/s   the Reader at --every 1 (every frame decoded, one in fps converted): video seconds per second
  prep         the Reader through the read-ahead thread with inspect's per-sample work (resize to the model
               size, quality gate, thumbnail JPEG) as run.py does ahead of the model, at --every 1 and at
               every frame, by one thread (x1) and by run.PREPARE_WORKERS threads
Wall-clock rates and CPU-seconds of the process (FFmpeg's decoding threads included) are printed.
With --model vit_b16 (a random-weight ViT-B/16 SFR-Net, 17 classes, the jitted eval step of serve.JaxScorer
at --batch), after those: `eval step` = the scorer alone on the video's frames already decoded and resized
in memory; `inspect` = run.inspect_videos on the video file, every frame sampled (decode, quality gate,
thumbnails and outputs overlapped with the model); the ratio is inspect's frames/s over the eval step's.
With --distance ocr, the prep line `prep+ocr` adds the counter's reading (inspection/ocr.py) to the per-sample
work, and inspect runs alternately without and with `--distance ocr` (--repeats times each, in one process,
so both see the same machine): frames/s and CPU-seconds per frame of each, and the ratio of their rates.
Heatmaps: `maps step` = the scorer's logits_and_maps alone on the same frames, and inspect is timed with its
key-frame heatmaps on (the default) and off (--no-heatmaps), alternating, best of --repeats each.
(Not named inspect.py:
a script's folder comes first on sys.path, and numpy's `import inspect` would load it in place of the
standard library's, breaking every script here.)
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _timed(fn, repeats):
    best = None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        count = fn()
        result = (time.perf_counter() - wall, time.process_time() - cpu, count)
        best = result if best is None or result[0] < best[0] else best
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--codec", default="h264", choices=("h264", "mpeg2", "mpeg4"))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", choices=("none", "vit_b16"), default="none")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--distance", choices=("none", "ocr"), default="none")
    args = parser.parse_args(argv)

    from sfr_jax.data import images
    from sfr_jax.data import synthetic_video as sv
    from sfr_jax.inspection import quality, run, thumbs, video
    from sfr_jax.inspection.sources import Source

    spec = sv.VideoSpec(duration_s=args.seconds, fps=args.fps, size=(720, 576), draw_height=192,
                        planted=(sv.Planted("RB", 2.0, 6.0), sv.Planted("FO", 9.0, 12.0)))
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        path = sv.write_video(os.path.join(tmp, f"bench{sv.CODECS[args.codec][3]}"), spec, args.codec)
        print(f"rendered and encoded {spec.num_frames} frames 720x576 {args.codec} in "
              f"{time.perf_counter() - started:.1f} s ({os.path.getsize(path) / 1e6:.1f} MB)")
        source = Source(path, "bench")

        def decode(every):
            def go():
                reader = video.Reader(source, every)
                count = sum(1 for _ in reader)
                assert reader.status.ok, reader.status
                return count
            return go

        def prepared(every, workers, read_counter=False):
            def prepare(sample):
                reading = counter.read(sample.frame) if read_counter else None
                return (images.from_array(sample.frame, args.image_size), quality.assess(sample.frame),
                        thumbs.thumbnail_jpeg(sample.frame), reading)

            def go():
                nonlocal counter
                counter = ocr.CounterReader() if read_counter else None
                return sum(1 for _ in video.ahead(video.Reader(source, every), 64, prepare, workers))
            counter = None
            return go

        n = run.PREPARE_WORKERS
        cases = [("decode", decode(None), "frames"), ("decode 1/s", decode(1.0), "samples"),
                 ("prep 1/s x1", prepared(1.0, 1), "samples"), ("prep all x1", prepared(None, 1), "frames"),
                 (f"prep all x{n}", prepared(None, n), "frames")]
        if args.distance == "ocr":
            from sfr_jax.inspection import ocr

            ocr.engine()  # models loaded before the clock starts
            cases.append((f"prep+ocr x{n}", prepared(None, n, True), "frames"))
        for label, fn, unit in cases:
            wall, cpu, count = _timed(fn, args.repeats)
            video_s = spec.num_frames / spec.fps
            print(f"{label:<12} {count:5d} {unit:<8} wall {wall:6.2f} s: {count / wall:8.1f} {unit}/s, "
                  f"{video_s / wall:7.1f} video-s/s | cpu {cpu:6.2f} s: {count / cpu:8.1f} {unit}/cpu-s")
        if args.model != "none":
            model_rates(source, args, tmp)
    return 0


def model_rates(source, args, tmp):
    """The eval step alone vs the whole of inspect, on the same frames, with a ViT-B/16 SFR-Net."""
    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from export_fixtures import random_sfr  # random weights filled from numpy, no slow eager init
    from sfr_jax.data import images
    from sfr_jax.infer.model import LoadedModel
    from sfr_jax.inspection import run, sources, video
    from sfr_jax.models.clip import CLIPConfig
    from sfr_jax.models.rs import RSConfig
    from sfr_jax.models.sfr import SFRConfig
    from sfr_jax.serve.scorer import JaxScorer

    model, classes = random_sfr(CLIPConfig.vit_b16(), SFRConfig(rs=RSConfig(bottleneck_dim=128)), n_seen=12,
                                n_unseen=5, seed=5)
    loaded = LoadedModel(model, classes, None, 224, (0.5,) * 3, (0.5,) * 3, {})
    scorer = JaxScorer(loaded, classes.ids("gzsl"), args.batch)
    frames = np.stack([images.from_array(s.frame, 224) for s in video.Reader(source, None)])
    scorer.logits(frames[:args.batch])  # compile
    scorer.logits_and_maps(frames[:args.batch])
    best = {"eval step": None, "maps step": None, "inspect": None, "inspect, no heatmaps": None}
    inputs, _ = sources.expand([source.path])
    if args.distance == "ocr":
        from sfr_jax.inspection import ocr

        ocr.engine()  # models loaded before the clock starts
        best["inspect+ocr"] = None
    cpu_of = dict.fromkeys(best)
    for round_ in range(args.repeats):  # alternating, so a change of machine load hits all alike
        for number, name in enumerate(best):
            started, cpu = time.perf_counter(), time.process_time()
            if name == "eval step":
                scorer.logits(frames)
            elif name == "maps step":
                scorer.logits_and_maps(frames)
            else:
                options = run.InspectOptions(every_s=None, batch=args.batch, progress=False,
                                             heatmaps=name != "inspect, no heatmaps",
                                             distance="ocr" if name == "inspect+ocr" else None)
                summary = run.inspect_videos(scorer, inputs, os.path.join(tmp, f"out{round_}-{number}"), options)
                assert not summary.failed, summary
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            if best[name] is None or wall < best[name]:
                best[name], cpu_of[name] = wall, cpu
    rate = {name: len(frames) / wall for name, wall in best.items()}
    for name, r in rate.items():
        print(f"{name:20s} {len(frames):5d} frames   {r:8.2f} frames/s, {cpu_of[name] / len(frames) * 1000:.0f} "
              f"cpu-ms/frame (ViT-B/16 SFR-Net, batch {args.batch})")
    print(f"inspect / eval step: {rate['inspect'] / rate['eval step']:.3f}; maps step / eval step: "
          f"{rate['maps step'] / rate['eval step']:.3f}; inspect with / without heatmaps: "
          f"{rate['inspect'] / rate['inspect, no heatmaps']:.3f}"
          + (f"; inspect --distance ocr / inspect: {rate['inspect+ocr'] / rate['inspect']:.3f}" if "inspect+ocr" in rate
             else ""))


if __name__ == "__main__":
    sys.exit(main())
