"""Startup cost of `import zoo` and `zoo --help`, against a bare interpreter, in one run.

    python benchmarks/startup.py [--runs 15]

Targets: `import zoo` well under 0.5 s and `zoo --help` under 1.5 s on the 2-core CI
machines. Times are wall-clock medians of fresh processes; the bare `python -c pass` baseline runs in
the same command so ratios compare like with like. Also reports which heavy modules `import zoo` pulled in.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "timm", "torchvision", "huggingface_hub", "safetensors", "rich", "numpy")


def median_seconds(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, check=True, capture_output=True)  # warm the file cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    py = sys.executable
    zoo_cli = str(Path(py).with_name("zoo"))
    if not Path(zoo_cli).exists():
        zoo_cli = "zoo"
    baseline = median_seconds([py, "-c", "pass"], args.runs)
    import_zoo = median_seconds([py, "-c", "import zoo"], args.runs)
    help_zoo = median_seconds([zoo_cli, "--help"], args.runs)
    loaded = subprocess.run(
        [py, "-c", f"import sys, zoo; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, {args.runs} runs each (median)")
    print(f"{'command':<22}{'seconds':>9}{'x bare python':>15}{'target':>9}")
    for name, value, target in (
        ("python -c pass", baseline, None),
        ("python -c 'import zoo'", import_zoo, 0.5),
        ("zoo --help", help_zoo, 1.5),
    ):
        verdict = "" if target is None else (f"< {target}s ok" if value < target else f"> {target}s SLOW")
        print(f"{name:<22}{value:>9.3f}{value / baseline:>15.2f}  {verdict}")
    print(f"heavy modules imported by `import zoo`: {loaded or 'none'}")
    print(json.dumps({"python_pass_s": round(baseline, 4), "import_zoo_s": round(import_zoo, 4), "zoo_help_s": round(help_zoo, 4)}))


if __name__ == "__main__":
    main()
