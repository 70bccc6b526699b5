"""Run directories: where a run lives, how it is opened (never over another run), atomic JSON writes."""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ttrl_bench.errors import UsageError
from ttrl_bench.measure.provenance import config_hash

if TYPE_CHECKING:
    from ttrl_bench.measure.loop import Measurement


def default_out_dir(task: str, model_name: str, identity: dict, kind: str = "eval") -> Path:
    """runs/<kind>-<task>-<model>-<hash of what makes the run>: the same command finds its run again."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-")
    task_slug = re.sub(r"[^A-Za-z0-9._-]+", "-", task).strip("-")  # "lm_eval:gsm8k" -> "lm_eval-gsm8k"
    return Path("runs") / f"{kind}-{task_slug}-{slug}-{config_hash(identity)}"


def open_run_dir(out: Path, identity: dict, full_config: dict) -> None:
    """Create ``out`` or check that it holds this very run; never overwrite another run."""
    cfg_path = out / "config.json"
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())["identity"]
        except (ValueError, KeyError):
            raise UsageError(f"{cfg_path}: not a ttrl-bench run config; use another --out") from None
        # "chunk" is derived from sampling.n: name the setting the user changed, not its consequence
        for key in sorted(set(old) | set(identity), key=lambda k: (k == "chunk", k)):
            if old.get(key) != identity.get(key):
                raise UsageError(
                    f"--out {out}: holds a run with a different {key} ({old.get(key)!r} vs {identity.get(key)!r}); "
                    "use another --out"
                )
        return
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out}: exists and is not a ttrl-bench run directory; use another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(cfg_path, full_config)


def write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)




def write_measurement(out: Path, m: Measurement) -> None:
    with open(out / "grades.jsonl.tmp", "w") as fh:
        for g in m.grades:
            fh.write(json.dumps(asdict(g)) + "\n")
    os.replace(out / "grades.jsonl.tmp", out / "grades.jsonl")
    write_json(out / "metrics.json", m.summary.to_dict())


