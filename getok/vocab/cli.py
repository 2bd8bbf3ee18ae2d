"""``getok tiny-model ...`` and ``getok vocab ...``: build the tiny model, add / resize spatial tokens.

Examples::

    getok tiny-model init runs/tiny --layers 4 --tied
    getok vocab add --model runs/tiny --codec grid_offset:n=32,r=1,step=0.5 --init 2d --out runs/tiny_g32
    getok vocab resize-grid --model runs/tiny_g32 --new-n 64 --out runs/tiny_g64
    getok vocab resize-offsets --model runs/tiny_g32 --r 2 --step 0.25 --out runs/tiny_g32_r2
    getok vocab show runs/tiny_g64

Every output directory is a standalone model (safetensors, processor, ``getok_layout.json``), written
atomically. torch / transformers are imported inside the command functions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..cli.main import main as cli_main
from ..errors import ConfigError, LayoutMismatchError
from .add_tokens import add_spatial_tokens, save_with_layout
from .layout import LAYOUT_FILE, VocabLayout
from .loading import load_model_and_processor
from .resize import resize_grid, resize_offsets
from .tiny import TinyModelConfig, build_tiny_model

__all__ = ["register", "main"]


def _add_tiny(sub) -> None:
    p = sub.add_parser("tiny-model", help="the tiny offline Qwen-VL (random weights, local tokenizer)")
    tsub = p.add_subparsers(dest="tiny_command", metavar="ACTION", required=True)
    q = tsub.add_parser("init", help="build the tiny model into DIR")
    q.add_argument("dir", type=Path)
    q.add_argument("--family", default=None, choices=("qwen3_vl", "qwen3_vl_moe", "qwen2_5_vl"),
                   help="model family (default qwen3_vl: the CPU grounding recipe; docs/tiny_grounding.md)")
    q.add_argument("--patch", type=int, default=None,
                   help="vision patch size in pixels (default 7: 14-px tokens; 16: the real Qwen3-VL's 32-px unit)")
    q.add_argument("--experts", type=int, default=None, help="qwen3_vl_moe: experts per layer (default 4)")
    q.add_argument("--experts-per-token", type=int, default=None, help="qwen3_vl_moe: experts routed per token (default 2)")
    q.add_argument("--moe-intermediate", type=int, default=None, help="qwen3_vl_moe: width of one expert (default 128)")
    q.add_argument("--layers", type=int, default=None, help="text decoder layers (default 4)")
    q.add_argument("--hidden", type=int, default=None, help="text hidden size (default 256; vision out follows)")
    q.add_argument("--intermediate", type=int, default=None, help="text MLP size (default 512)")
    q.add_argument("--heads", type=int, default=None, help="attention heads (default 4)")
    q.add_argument("--kv-heads", type=int, default=None, help="key/value heads (default 2)")
    q.add_argument("--mrope-section", type=str, default=None, help="e.g. 8,12,12 (must sum to head_dim/2)")
    q.add_argument("--vision-depth", type=int, default=None)
    q.add_argument("--vision-hidden", type=int, default=None)
    q.add_argument("--fullatt", type=str, default=None,
                   help="qwen2_5_vl: full-attention vision blocks, e.g. 1 (default: the last)")
    q.add_argument("--tied", action="store_true", help="tie the output head to the input embedding")
    q.add_argument("--min-pixels", type=int, default=None)
    q.add_argument("--max-pixels", type=int, default=None)
    q.add_argument("--vocab-multiple", type=int, default=None, help="pad embedding rows to a multiple (Qwen-like)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_tiny_init)


def _add_vocab(sub) -> None:
    p = sub.add_parser("vocab", help="spatial vocabulary: add tokens, resize grids / offsets, show layouts")
    vsub = p.add_subparsers(dest="vocab_command", metavar="ACTION", required=True)

    def common(q, init_default):
        q.add_argument("--model", type=Path, required=True, help="model directory (tiny or real Qwen2.5-VL)")
        q.add_argument("--out", type=Path, required=True, help="output model directory")
        q.add_argument("--init", default=init_default, help=f"row init strategy (default {init_default})")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--dtype", default=None, help="load dtype (default: the checkpoint's)")
        q.add_argument("--trust-remote-code", action="store_true")
        q.add_argument("--overwrite", action="store_true")

    q = vsub.add_parser("add", help="add the tokens of one or more codecs to a model")
    q.add_argument("--codec", action="append", required=True, help="codec spec; repeat for several")
    common(q, "mean")
    q.set_defaults(func=cmd_vocab_add)

    q = vsub.add_parser("resize-grid", help="change the grid size, interpolating the learned cell rows")
    q.add_argument("--new-n", type=int, required=True)
    q.add_argument("--from-n", type=int, default=None, help="which grid, when the layout has several")
    q.add_argument("--keep-old", action="store_true", help="keep the old grid tokens beside the new ones")
    common(q, "interp")
    q.set_defaults(func=cmd_vocab_resize_grid)

    q = vsub.add_parser("resize-offsets", help="change the offset radius and/or step")
    q.add_argument("--r", type=int, default=None)
    q.add_argument("--step", type=float, default=None)
    q.add_argument("--keep-old", action="store_true")
    common(q, "interp")
    q.set_defaults(func=cmd_vocab_resize_offsets)

    q = vsub.add_parser("show", help="print a directory's layout (and check it against its tokenizer)")
    q.add_argument("dir", type=Path)
    q.set_defaults(func=cmd_vocab_show)


def register(subparsers) -> None:
    """Add ``tiny-model`` and ``vocab`` to the ``getok`` CLI."""
    _add_tiny(subparsers)
    _add_vocab(subparsers)


# ------------------------------------------------------------------------------------------------ commands
def cmd_tiny_init(args) -> int:
    kw = {}
    for opt, fld in (
        ("layers", "num_layers"), ("hidden", "hidden_size"), ("intermediate", "intermediate_size"),
        ("heads", "num_heads"), ("kv_heads", "num_kv_heads"), ("vision_depth", "vision_depth"),
        ("vision_hidden", "vision_hidden_size"), ("min_pixels", "min_pixels"), ("max_pixels", "max_pixels"),
        ("vocab_multiple", "vocab_multiple"), ("family", "family"), ("patch", "patch_size"),
        ("experts", "num_experts"), ("experts_per_token", "num_experts_per_tok"),
        ("moe_intermediate", "moe_intermediate_size"),
    ):
        v = getattr(args, opt)
        if v is not None:
            kw[fld] = v
    if args.hidden is not None:
        kw["vision_out_hidden_size"] = args.hidden
    if args.fullatt is not None:
        try:
            kw["fullatt_block_indexes"] = tuple(int(v) for v in args.fullatt.split(",") if v.strip())
        except ValueError as exc:
            raise ConfigError(f"--fullatt must be comma-separated ints, got {args.fullatt!r}") from exc
    elif args.vision_depth is not None:
        kw["fullatt_block_indexes"] = (args.vision_depth - 1,)
    if args.mrope_section:
        try:
            kw["mrope_section"] = tuple(int(v) for v in args.mrope_section.split(","))
        except ValueError as exc:
            raise ConfigError(f"--mrope-section must be comma-separated ints, got {args.mrope_section!r}") from exc
    elif "hidden_size" in kw or "num_heads" in kw:
        half = kw.get("hidden_size", 256) // kw.get("num_heads", 4) // 2  # Qwen's 1 : 1.5 : 1.5 split
        hw = (half - half // 4) // 2
        kw["mrope_section"] = (half - 2 * hw, hw, hw)
    kw["tie_word_embeddings"] = bool(args.tied)
    kw["seed"] = args.seed
    cfg = TinyModelConfig(**kw)
    t0 = time.perf_counter()
    out = build_tiny_model(args.dir, cfg, overwrite=args.overwrite)
    n = _param_count(out)
    print(f"tiny {cfg.family} written to {out} ({n / 1e6:.2f} M parameters, {time.perf_counter() - t0:.1f} s)")
    return 0


def _param_count(path: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                total += _prod(st.get_slice(k).get_shape())
    return total


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _load(args):
    model, processor = load_model_and_processor(args.model, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    layout = VocabLayout.load(args.model) if (Path(args.model) / LAYOUT_FILE).is_file() else None
    return model, processor, layout


def _save(model, processor, layout, out: Path, overwrite: bool) -> None:
    save_with_layout(model, processor, layout, out, overwrite=overwrite)


def _summary(layout, model, t0) -> str:
    rows = int(model.get_input_embeddings().weight.shape[0])
    return (
        f"{len(layout.tokens)} spatial tokens (ids {min(layout.ids)}..{max(layout.ids)}), codecs {layout.codecs}, "
        f"layout {layout.hash}, {rows} embedding rows, {time.perf_counter() - t0:.1f} s"
    )


def cmd_vocab_add(args) -> int:
    t0 = time.perf_counter()
    model, processor, existing = _load(args)
    codecs = list(existing.codecs) + list(args.codec) if existing is not None else list(args.codec)
    layout = add_spatial_tokens(processor, model, codecs, init=args.init, seed=args.seed)
    if existing is not None:  # keep the record of earlier resizes
        op = {"op": "add", "codecs": list(args.codec), "init": args.init}
        layout.extra["history"] = list(existing.extra.get("history", [])) + [op]
    if not layout.tokens:
        raise ConfigError(f"codecs {codecs} add no tokens (text codecs need no vocabulary change)")
    _save(model, processor, layout, args.out, args.overwrite)
    print(f"{args.out}: {_summary(layout, model, t0)}")
    return 0


def _need_layout(layout, path):
    if layout is None:
        raise LayoutMismatchError(f"{path} has no getok_layout.json; add tokens first with `getok vocab add`")
    return layout


def cmd_vocab_resize_grid(args) -> int:
    t0 = time.perf_counter()
    model, processor, layout = _load(args)
    processor, new = resize_grid(
        model, processor, _need_layout(layout, args.model), args.new_n, keep_old=args.keep_old, init=args.init,
        seed=args.seed, from_n=args.from_n,
    )
    _save(model, processor, new, args.out, args.overwrite)
    print(f"{args.out}: {_summary(new, model, t0)}")
    return 0


def cmd_vocab_resize_offsets(args) -> int:
    t0 = time.perf_counter()
    model, processor, layout = _load(args)
    processor, new = resize_offsets(
        model, processor, _need_layout(layout, args.model), r=args.r, step=args.step, keep_old=args.keep_old,
        init=args.init, seed=args.seed,
    )
    _save(model, processor, new, args.out, args.overwrite)
    print(f"{args.out}: {_summary(new, model, t0)}")
    return 0


def cmd_vocab_show(args) -> int:
    from transformers import AutoTokenizer

    layout = VocabLayout.load(args.dir)
    layout.validate(AutoTokenizer.from_pretrained(args.dir))
    d = layout.to_dict()
    d["tokens"] = f"{len(layout.tokens)} tokens: {layout.tokens[:3]} ... {layout.tokens[-2:]}"
    d["ids"] = None if layout.ids is None else f"{min(layout.ids)}..{max(layout.ids)}"
    print(json.dumps(d, indent=1))
    print("layout matches the tokenizer")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m getok.vocab.cli``): ``tiny-model`` and ``vocab``."""

    return cli_main(argv, modules=['getok.vocab.cli'])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
