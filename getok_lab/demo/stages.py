"""The stage runner: a stage runs once per settings fingerprint, writes ``stages/<name>.json`` last
(with its wall / CPU time) and is skipped on a re-run with the same settings."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from getok.config import config_to_dict
from getok.decoding.base import former_decoder_specs
from getok.errors import ConfigError
from getok.io import atomic_write_json
from getok.provenance import Clock, fingerprint
from getok.rl.grpo_config import RewardSection

from .config import STAGES

#: Options added after demo runs could have been made: (section, key, the value that means "unused").
_ADDED_OPTIONS = (("vision_warmup", "moves", 0.0), ("eval", "dataset", None),
                  ("reward", "polygon", config_to_dict(RewardSection()).get("polygon")))  # fmt: skip


def without_unused_options(obj):
    """``obj`` (a stage's settings) without the options added after a run could have been made, where they
    hold their "unused" value (:data:`_ADDED_OPTIONS`): what the settings record looked like before.

    >>> without_unused_options({"sft": {"vision_warmup": {"steps": 450, "moves": 0.0}, "eval": {"dataset": "d"}}})
    {'sft': {'vision_warmup': {'steps': 450}, 'eval': {'dataset': 'd'}}}
    """
    if isinstance(obj, dict):
        out = {k: without_unused_options(v) for k, v in obj.items()}
        for section, key, unused in _ADDED_OPTIONS:
            sec = out.get(section)
            if isinstance(sec, dict) and key in sec and sec[key] == unused:
                out[section] = {k: v for k, v in sec.items() if k != key}
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(without_unused_options(v) for v in obj)
    return obj


def _banner(k: int, name: str, text: str) -> None:
    line = f"[{k}/{len(STAGES)}] {name}: {text}"
    print(f"\n{'=' * len(line)}\n{line}\n{'=' * len(line)}", file=sys.stderr, flush=True)


class Stages:
    """Runs stages once: ``stages/<name>.json`` (written last) holds the fingerprint, timing and result."""

    def __init__(self, out: Path) -> None:
        self.dir = out / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def marker(self, name: str) -> dict | None:
        p = self.dir / f"{name}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def run(self, name: str, title: str, key: dict, fn: Callable[[], dict]) -> dict:
        fp = fingerprint(key)
        k = STAGES.index(name) + 1
        m = self.marker(name)
        if m is not None:
            # a stage made before the proposals decoder became point_masks has the former spec's fingerprint, one
            # made before an option existed has no entry for it
            older = without_unused_options(key)
            if m.get("fingerprint") not in (fp, fingerprint(older), fingerprint(former_decoder_specs(older))):
                raise ConfigError(
                    f"{self.dir / (name + '.json')} was made with other settings (another seed, --fast, config); "
                    "use another --out, or remove that directory to start over"
                )
            _banner(k, name, f"{title} — finished earlier ({m['wall_s']:.0f} s wall), skipped")
            self.skipped.append(name)
            return m
        _banner(k, name, title)
        with Clock() as clock:
            result = fn()
        m = {"stage": name, "title": title, "fingerprint": fp, "wall_s": round(clock.wall, 1),
             "cpu_s": round(clock.cpu, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "result": result}  # fmt: skip
        atomic_write_json(self.dir / f"{name}.json", m)
        print(f"[{k}/{len(STAGES)}] {name}: done in {m['wall_s']:.0f} s wall, {m['cpu_s']:.0f} s CPU",
              file=sys.stderr, flush=True)  # fmt: skip
        self.ran.append(name)
        return m


