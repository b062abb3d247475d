"""`sfr-jax inspect`: inspection videos -> defect events over time, per-video files and an HTML report.

    sources   VIDEOS arguments -> inputs (videos, frame folders), --shard
    video     seek-free decoding at sample times, a reading-ahead thread, the outcome of each input
    quality   the frame-quality gate (dark, uniform, blurred)
    events    smoothing, hysteresis, runs, gap merge, point vs continuous, peaks
    distance  time -> distance: a sidecar CSV or --length
    thumbs    key-frame thumbnails spooled to disk
    report    the self-contained report.html
    run       inspect_videos(): all of the above for many inputs, resumable, summary.csv
    compare   planted intervals vs found events (the demo)
    cli       the verb's flags; the model comes from sfr_jax.serve.open_scorer
"""
