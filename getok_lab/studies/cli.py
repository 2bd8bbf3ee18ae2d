"""``getok study <name>``: one command per research question, on the embedded defaults.

::

    getok study representations     [--seeds 0,1] [--steps N] [--fast] [--out DIR] [--config YAML] [a.b=c ...]
    getok study resize-vocab         [...]
    getok study self-correction      [...]
    getok study polygon-density      [...]

Every study writes ``<name>.json`` (settings, results, the exact command, seeds, versions, timings),
``<name>.md`` (tables) and ``<name>.png`` (plot) into ``--out`` (default ``benchmarks/results/studies``);
models, datasets and evaluation records go to ``--work-dir`` (default ``runs/studies/<name>``). The
defaults are the dataclasses of each study module; ``configs/studies/<name>.yaml`` repeats them.
``--fast`` is the CI path: the whole pipeline on a few steps and scenes (numbers meaningless).
"""

from __future__ import annotations

import argparse
import importlib
import logging

from getok.errors import ConfigError

__all__ = ["STUDIES", "register", "main", "parse_seeds"]

log = logging.getLogger("getok_lab.studies.cli")

#: name → (module, config loader, runner, one-line help)
STUDIES: dict[str, tuple[str, str, str, str]] = {
    "representations": (
        "getok_lab.studies.representations", "load_representations_config", "run_representations",
        "same model, data and budget with text coordinates, bins, grid, grid + offset, text and token polygons",
    ),
    "resize-vocab": (
        "getok_lab.studies.resize_vocab", "load_resize_config", "run_resize_vocab",
        "train at grid n, resize to m by interp / mean / random rows: accuracy before and after a short fine-tune",
    ),
    "self-correction": (
        "getok_lab.studies.self_correction", "load_selfcorrect_config", "run_self_correction",
        "per-turn IoU over K turns, improved / worse counts, the oracle refinement bound",
    ),
    "polygon-density": (
        "getok_lab.studies.polygon_density", "load_density_config", "run_polygon_density",
        "polygon epsilon sweep, tokens vs IoU: oracle on real-dev and after training on scenes",
    ),
}  # fmt: skip


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` → ``[0, 1, 2]``.

    >>> parse_seeds("0, 1,2")
    [0, 1, 2]
    """
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, got {text!r}") from exc
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds must name distinct seeds, got {text!r}")
    return seeds


def register(subparsers) -> None:
    """Add ``getok study ...`` to the CLI."""
    p = subparsers.add_parser("study", help="run a study (representations, resize-vocab, self-correction, polygon-density)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="study", metavar="STUDY")
    for name, (mod, _, _, helptext) in STUDIES.items():
        q = sub.add_parser(
            name, help=helptext, description=f"{helptext}. See {mod.replace('.', '/')}.py and docs/studies.md."
        )
        q.add_argument(
            "--config", help="YAML with settings (default: the built-in defaults; configs/studies/ repeats them)"
        )
        q.add_argument("--out", default="benchmarks/results/studies", help="where the JSON / markdown / PNG go")
        q.add_argument("--work-dir", help=f"models, datasets, records (default runs/studies/{name})")
        q.add_argument("--seeds", type=parse_seeds, help="comma-separated seeds, e.g. 0,1,2")
        q.add_argument("--steps", type=int, help="training steps per run (budget.steps)")
        q.add_argument("--fast", action="store_true", help="CI path: a few steps on a few scenes")
        q.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true", help="no progress bars")
        q.add_argument("overrides", nargs="*", metavar="a.b=c", help="settings overrides")
        q.set_defaults(func=run_study, study_name=name)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def build_config(name: str, args):
    """The study's config from the parsed arguments (``--fast`` first, then options, then ``a.b=c``)."""
    mod, loader, _, _ = STUDIES[name]
    m = importlib.import_module(mod)
    ov = []
    if args.seeds is not None:
        ov.append("seeds=[" + ",".join(str(s) for s in args.seeds) + "]")
    if args.steps is not None:
        if args.steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {args.steps}")
        ov.append(f"budget.steps={args.steps}")
    ov.append(f"work_dir={args.work_dir or f'runs/studies/{name}' + ('-fast' if args.fast else '')}")
    ov.extend(args.overrides or [])
    return getattr(m, loader)(args.config, ov, fast=bool(args.fast))


def run_study(args) -> int:
    """``getok study NAME``: load the config, run, print where the results are."""
    import sys

    name = args.study_name
    mod, _, runner, _ = STUDIES[name]
    cfg = build_config(name, args)
    m = importlib.import_module(mod)
    argv = getattr(args, "argv", None) or ["study", *sys.argv[sys.argv.index("study") + 1 :]]  # set by getok.cli.main
    result = getattr(m, runner)(cfg, args.out, progress=not args.quiet, argv=argv)
    outs = result.get("outputs", {})
    print(f"{name}: {outs.get('md')}")
    for k in ("json", "png"):
        if outs.get(k):
            print(f"  {k}: {outs[k]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m getok_lab.studies.cli representations --fast``)."""
    import sys

    from getok.cli.main import main as cli_main

    return cli_main(["study", *(sys.argv[1:] if argv is None else argv)], modules=["getok_lab.studies.cli"])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
