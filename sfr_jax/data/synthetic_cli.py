"""`sfr-jax synth`: write a synthetic mini Sewer-ML in the real raw format (sfr_jax.data.synthetic)."""
from __future__ import annotations

from sfr_jax import cli, options
from sfr_jax.data.synthetic import write
from sfr_jax.errors import InputError


@cli.verb("sfr-jax synth")
def main(argv) -> int:
    """Entry point of `sfr-jax synth`."""
    parser = cli.parser("sfr-jax synth", "write a synthetic mini Sewer-ML in the real raw format (PNG frames + CSVs)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--num-images", type=options.positive_int, default=1000)
    parser.add_argument("--seed", type=options.nonnegative_int, default=0)
    parser.add_argument("--val-fraction", type=options.fraction, default=0.2)
    parser.add_argument("--layout", choices=["official", "sfr"], default="official")
    parser.add_argument("--draw-size", "--image-size", type=options.positive_int, default=192, dest="draw_size",
                        help="drawing height in pixels (width is 1.25x)")
    parser.add_argument("--save-size", choices=["real", "draw"], default="real",
                        help="'real': resize to Sewer-ML frame sizes (352x288, 720x576, ...); 'draw': keep the drawing size")
    parser.add_argument("--style", choices=["cctv", "web"], default="cctv")
    parser.add_argument("--normal-fraction", type=options.probability, default=0.4)
    args = parser.parse_args(argv)
    if args.num_images <= 0 or args.draw_size < 16 or not 0 <= args.val_fraction < 1:
        raise InputError(f"need --num-images > 0, --draw-size >= 16, 0 <= --val-fraction < 1 (got "
                         f"{args.num_images}, {args.draw_size}, {args.val_fraction})")
    counts = write(args.out, args.num_images, args.seed, val_fraction=args.val_fraction, layout=args.layout,
                   draw_size=args.draw_size, save_size=args.save_size, style=args.style,
                   normal_fraction=args.normal_fraction, progress=True)
    print(f"wrote {counts['train']} train + {counts['test']} test frames ({args.style}, {args.layout} layout) to {args.out}")
    return 0
