"""``zoo bench``: parameters, MACs, latency, throughput and memory of models on this machine.

Backends: ``torch`` (eager, inference mode), ``compile`` (``torch.compile``), and the verified exports in
their runtimes: ``onnxruntime``, ``openvino``, ``executorch`` and ``litert``, each at the precisions it
carries (``precisions``: fp32, fp16, bf16, int8; int8 calibrated on random inputs times speed, not
accuracy: ``zoo quantize`` measures that). Every (backend, precision) of a model is built first and then
timed in interleaved rounds, so a machine that gets busier hurts all of them alike; onnxruntime's idle
threads do not spin. MACs come from ``torch.utils.flop_counter`` (FLOPs / 2) on the deploy form. A
matmul probe measures the machine's own peak GFLOP/s so each result also says what fraction of it the
model reaches. Results are keyed by a machine description (CPU or GPU, threads, torch version) and
merged into one JSON file per machine, which model cards cite; a PNG plots latency against each
paper's reported accuracy (the Pareto view).
"""
from __future__ import annotations

import json
import os
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo._io import atomic_write, atomic_write_json
from zoo.errors import BadArgumentError
from zoo.registry import state_of

BACKENDS = ("torch", "compile", "onnxruntime", "openvino", "executorch", "litert")
RUNTIME_FORMATS = {"onnxruntime": "onnx", "openvino": "openvino", "executorch": "executorch", "litert": "litert"}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
ROUNDS = 5


def count_macs(model, x) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def settle_batchnorm(model, size: int, batches: int = 3) -> None:
    """Give an untrained model's BatchNorm layers running statistics from a few random batches (in place),
    if the model says its fresh activations collapse (``collapses_untrained``); otherwise do nothing.

    Fresh, a deep network keeps the default statistics (mean 0, variance 1) in eval mode, so activations may
    shrink layer by layer: transformers' DETRs draw conv weights from N(0, 0.02) and their encoders see
    ~1e-12, where every query scores the same and the top-300 choice is a tie that PyTorch and onnxruntime
    break differently. Random batches give the activations a trained model's scale. For timing and export
    checks of models without trained weights (other families are left as they are: their checks pass fresh).
    """
    if not getattr(model, "collapses_untrained", False):
        return
    import torch

    from zoo.models._norm import recalibrate_batchnorm

    generator = torch.Generator().manual_seed(0)
    recalibrate_batchnorm(model, (torch.rand(2, 3, size, size, generator=generator) for _ in range(batches)))


def matmul_peak_gflops(threads: int, size: int = 1024, seconds: float = 1.0) -> float:
    """The machine's fp32 matmul rate with ``threads`` threads: the ceiling models are compared to."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    with _threads(threads):
        for _ in range(3):
            a @ b
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            runs += 1
        elapsed = time.perf_counter() - start
    return 2 * size**3 * runs / elapsed / 1e9


class _threads:
    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self):
        import torch

        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.old)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def time_calls(fn: Callable[[], Any], runs: int, warmup: int, sync: Callable[[], None] = lambda: None) -> dict[str, float]:
    base, peak, times = _rss_bytes(), 0, []  # memory growth counts from before the first call
    for _ in range(warmup):
        fn()
        peak = max(peak, _rss_bytes())
    sync()
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
        peak = max(peak, _rss_bytes())
    times.sort()
    return {
        "p50_ms": 1e3 * statistics.median(times),
        "p90_ms": 1e3 * times[min(len(times) - 1, int(0.9 * len(times)))],
        "mean_ms": 1e3 * statistics.fmean(times),
        "peak_rss_growth_mb": max(0, peak - base) / 2**20,
    }


def bench_model(
    name: str, *, backends: Sequence[str], batch: int, imgsz: int | None, threads: int, runs: int, warmup: int, device: str,
    precisions: Sequence[str] = ("fp32",), rounds: int = ROUNDS, calibration: Any = None,
) -> list[dict[str, Any]]:
    """One row per (backend, precision) the backend carries; a failing one gets an ``error`` and the rest go on."""
    import tempfile

    import torch

    import zoo
    from zoo.export import checked_input_size, deploy_form, example_input

    model = deploy_form(zoo.load(name))
    spec = model.zoo_spec
    size = checked_input_size(spec, imgsz)
    x = example_input(spec, size, batch, torch.Generator().manual_seed(0))
    params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, x[:1])
    spiking = spiking_view(model, spec, size)
    rows, runners = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            for precision in backend_precisions(backend, precisions, model):
                row = {"model": name, "backend": backend, "precision": precision, "batch": batch, "input_size": list(size),
                       "threads": threads, "device": device, "params": params, "macs": macs}
                if spiking is not None:
                    row["snn"] = spiking
                try:
                    runners[len(rows)] = make_runner(model, spec, x, backend, precision, threads, device, Path(tmp), calibration)
                except Exception as e:  # one backend failing must not lose the others' numbers
                    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                rows.append(row)
        timed = time_interleaved(runners, runs, warmup, rounds, threads=threads,
                                 sync=torch.cuda.synchronize if device == "cuda" else (lambda: None))
    for i, result in timed.items():
        row = rows[i]
        row.update(result)
        row["throughput_per_s"] = batch / (row["mean_ms"] / 1e3)
        row["gflops_per_s"] = 2 * macs * batch / (row["p50_ms"] / 1e3) / 1e9
    return rows


def backend_precisions(backend: str, precisions: Sequence[str], model) -> list[str]:
    """The asked-for precisions this backend can run (eager and compile: fp32; a QAT model: its int8 graph)."""
    from zoo.export import PRECISIONS as FORMAT_PRECISIONS

    if state_of(model).int8:
        return ["int8"]
    if backend not in RUNTIME_FORMATS:
        return ["fp32"] if "fp32" in precisions else []
    return [p for p in precisions if p in FORMAT_PRECISIONS[RUNTIME_FORMATS[backend]]]


def make_runner(model, spec, x, backend: str, precision: str, threads: int, device: str, tmp: Path, calibration=None):
    """A no-argument callable that runs ``x`` through ``backend``: the verified export, opened in its runtime."""
    import torch

    if backend in ("torch", "compile"):
        model, xd = model.to(device), x.to(device)
        fn = torch.compile(model) if backend == "compile" else model

        def run():
            with torch.inference_mode():
                return fn(xd)

        return run
    if device == "cuda" and backend != "onnxruntime":
        raise BadArgumentError(f"{backend} runs on the CPU here; time it with --device cpu")
    path = export_form(model, x, backend, precision, tmp, calibration)
    fn = open_runtime(RUNTIME_FORMATS[backend], path, threads, device)
    feed = x.numpy()
    return lambda: fn(feed)


def export_form(model, x, backend: str, precision: str, tmp: Path, calibration=None) -> Path:
    """The verified export ``backend`` runs at ``precision``, written into ``tmp``; int8 without calibration data is
    calibrated on random inputs (what its speed needs, not its accuracy)."""
    import torch

    from zoo.export import FORMATS, export

    if backend not in RUNTIME_FORMATS:
        raise BadArgumentError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    fmt = RUNTIME_FORMATS[backend]
    if precision == "int8" and calibration is None and not state_of(model).int8:
        generator = torch.Generator().manual_seed(1)
        calibration = [torch.randn(x.shape, generator=generator) for _ in range(4)]
    path = Path(tmp) / f"{backend}-{precision}{FORMATS[fmt]}"
    export(model, fmt, imgsz=x.shape[-1] if x.dim() == 4 else None, batch=x.shape[0], precision=precision, out=path,
           calibration=calibration if precision == "int8" else None)
    return path


def open_runtime(fmt: str, path: Path, threads: int | None = None, device: str = "cpu"):
    """numpy in, numpy out: an exported file opened in its own runtime."""
    if fmt == "onnx":
        from zoo.export.onnx import session

        s = session(path, threads, device, spinning=False)
        name = s.get_inputs()[0].name
        return lambda x: s.run(None, {name: x})[0]
    module = __import__(f"zoo.export.{fmt}", fromlist=["runner"])
    return module.runner(path, threads)


def time_interleaved(runners: dict[Any, Callable[[], Any]], runs: int, warmup: int, rounds: int = ROUNDS,
                     threads: int | None = None, sync: Callable[[], None] = lambda: None) -> dict[Any, dict[str, float]]:
    """Latency of each runner, timed in ``rounds`` rounds of ``runs / rounds`` calls that take turns, so load that
    comes and goes on a shared machine falls on every runner alike; p50/p90/mean over all calls."""
    rounds = max(1, min(rounds, runs))
    per_round = -(-runs // rounds)
    times: dict[Any, list[float]] = {k: [] for k in runners}
    growth: dict[Any, float] = {}
    with _threads(threads or _torch_threads()):
        for key, fn in runners.items():
            base = _rss_bytes()
            for _ in range(warmup):
                fn()
            sync()
            growth[key] = max(0, _rss_bytes() - base) / 2**20
        for _ in range(rounds):
            for key, fn in runners.items():
                for _ in range(per_round):
                    start = time.perf_counter()
                    fn()
                    sync()
                    times[key].append(time.perf_counter() - start)
    results = {}
    for key, t in times.items():
        t.sort()
        results[key] = {"p50_ms": 1e3 * statistics.median(t), "p90_ms": 1e3 * t[min(len(t) - 1, int(0.9 * len(t)))],
                        "mean_ms": 1e3 * statistics.fmean(t), "peak_rss_growth_mb": growth[key], "rounds": rounds}
    return results


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def spiking_view(model, spec, size) -> dict[str, Any] | None:
    """An SNN's energy view on a real photo (scikit-learn's sample): spike rates per neuron layer, synaptic
    operations and the MACs left (direct-encoded first layer) against the ANN's MACs, in mJ with the 45 nm
    constants SNN papers use (:mod:`zoo.snn`). ``None`` for other models."""
    from zoo.snn import energy, is_spiking

    if not is_spiking(model):
        return None
    from zoo.export import sample_inputs

    report = energy(model, sample_inputs(spec, size, 1)["real"])
    rates = report.spike_rates
    return {"timesteps": report.timesteps, "ann_macs": report.ann_macs, "snn_macs": report.snn_macs,
            "synaptic_ops": report.synaptic_ops, "ann_energy_mj": report.ann_energy_mj, "snn_energy_mj": report.snn_energy_mj,
            "mean_spike_rate": sum(rates.values()) / max(len(rates), 1), "spike_rates": rates, "energy_source": report.source}


def format_energy_table(document: dict[str, Any], names: Sequence[str] | None = None) -> Any | None:
    """Spiking models' energy view (one row per model), or None when the document has none."""
    from rich.table import Table

    rows = {r["model"]: r["snn"] for r in document["results"] if "snn" in r and (names is None or r["model"] in names)}
    if not rows:
        return None
    source = next(iter(rows.values()))["energy_source"]
    table = Table(title=f"Spiking models on a real photo: energy per image ({source})")
    for col in ("model", "T", "mean spike rate", "ANN GMACs", "SNN GMACs (first layer)", "GSOPs", "ANN mJ", "SNN mJ", "SNN/ANN"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, e in rows.items():
        table.add_row(name, str(e["timesteps"]), f"{e['mean_spike_rate']:.3f}", f"{e['ann_macs'] / 1e9:.3f}",
                      f"{e['snn_macs'] / 1e9:.3f}", f"{e['synaptic_ops'] / 1e9:.3f}", f"{e['ann_energy_mj']:.3f}",
                      f"{e['snn_energy_mj']:.3f}", f"{e['snn_energy_mj'] / e['ann_energy_mj']:.2f}")
    return table


def plot_spike_rates(document: dict[str, Any], path: Path, names: Sequence[str]) -> Path | None:
    """Bar chart of the per-layer spike rates of the spiking models among ``names`` (one panel each)."""
    rows = {r["model"]: r["snn"] for r in document["results"] if "snn" in r and r["model"] in names}
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 2.6 * len(rows)), squeeze=False)
    for ax, (name, e) in zip(axes[:, 0], rows.items()):
        rates = e["spike_rates"]
        ax.bar(range(len(rates)), list(rates.values()), color="tab:purple")
        ax.set_xticks(range(len(rates)), list(rates), rotation=90, fontsize=6)
        ax.set_ylabel("spikes / neuron / step")
        ax.set_title(f"{name} (T={e['timesteps']}): mean rate {e['mean_spike_rate']:.3f}, "
                     f"{e['snn_energy_mj']:.3f} mJ vs ANN {e['ann_energy_mj']:.3f} mJ", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def machine_key(info: dict[str, Any]) -> str:
    where = info.get("gpu") or info["cpu"]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{where}-{info['threads']}t-torch{info['torch']}").strip("_")


def bench(
    names: Sequence[str],
    *,
    backends: Sequence[str] = ("torch", "onnxruntime"),
    batch_sizes: Sequence[int] = (1,),
    imgsz: int | None = None,
    threads: int | None = None,
    runs: int = 50,
    warmup: int = 10,
    device: str = "cpu",
    out_dir: str | os.PathLike = "runs/bench",
    progress: bool = True,
    precisions: Sequence[str] = ("fp32",),
    rounds: int = ROUNDS,
) -> dict[str, Any]:
    """Benchmark ``names``; merge the results into ``out_dir/<machine>.json`` and return that document."""
    import torch

    from zoo.environment import machine

    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise BadArgumentError(f"unknown backend(s) {', '.join(bad)}; choose from {', '.join(BACKENDS)}")
    if runs < 50:
        raise BadArgumentError(f"runs must be at least 50 for stable percentiles, not {runs}")
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise BadArgumentError(f"unknown precision(s) {', '.join(bad)}; choose from {', '.join(PRECISIONS)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BadArgumentError("--device cuda: no CUDA GPU is visible here")
    threads = threads or torch.get_num_threads()
    info = machine()
    info["threads"] = threads
    info["peak_matmul_gflops"] = matmul_peak_gflops(threads) if device == "cpu" else None
    key = machine_key(info)
    path = Path(out_dir) / f"{key}.json"
    document = json.loads(path.read_text()) if path.is_file() else {"machine": info, "results": []}
    document["machine"] = info
    jobs = [(n, b) for n in names for b in batch_sizes]
    iterator = jobs
    if progress:
        from rich.progress import track

        iterator = track(jobs, description="benchmarking")
    for name, batch in iterator:
        rows = bench_model(name, backends=backends, batch=batch, imgsz=imgsz, threads=threads, runs=runs, warmup=warmup, device=device,
                           precisions=precisions, rounds=rounds)
        for row in rows:
            if info["peak_matmul_gflops"] and "gflops_per_s" in row:
                row["fraction_of_peak"] = row["gflops_per_s"] / info["peak_matmul_gflops"]
            row["measured"] = info["date"]
        same = lambda r, new: all(r.get(k, "fp32") == new.get(k, "fp32") if k == "precision" else r.get(k) == new.get(k)  # noqa: E731
                                  for k in ("model", "backend", "precision", "batch", "input_size", "threads", "device"))
        document["results"] = [r for r in document["results"] if not any(same(r, new) for new in rows)] + rows
    atomic_write_json(path, document)
    document["path"] = str(path)
    document["plot"] = str(plot_pareto(document, path.with_suffix(".png")))
    spikes = plot_spike_rates(document, path.with_name(path.stem + "-spike-rates.png"), names)
    if spikes is not None:
        document["spike_plot"] = str(spikes)
    return document


PARETO_PANELS = (  # (task, metric filter, y label): one panel per task that has points
    ("classification", lambda r: r.unit == "%" and "imagenet" in r.dataset, "ImageNet top-1 reported by the paper (%); orange: zero-shot"),
    ("detection", lambda r: r.metric == "box_ap", "COCO box AP reported by the paper (val2017; MobileDets: minival2014)"),
)


def plot_pareto(document: dict[str, Any], path: Path, backend: str = "torch") -> Path:
    """Latency (batch 1) against the paper's reported accuracy, one panel per task, with the Pareto front drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import zoo

    panels = []
    for task, wanted, ylabel in PARETO_PANELS:
        points = []
        for row in document["results"]:
            if row["backend"] != backend or row["batch"] != 1 or "p50_ms" not in row or Path(row["model"]).is_absolute():
                continue  # a run or saved folder has no paper number to plot against
            spec = zoo.info(row["model"])
            headline = spec.headline
            if spec.task == task and headline is not None and wanted(headline):
                points.append((row["p50_ms"], headline.value, row["model"], headline.metric))
        if points or task == "classification":
            panels.append((sorted(points), ylabel))
    fig, axes = plt.subplots(1, len(panels), figsize=(9 * len(panels), 6), squeeze=False)
    m = document["machine"]
    for ax, (points, ylabel) in zip(axes[0], panels):
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points],
                       c=["tab:orange" if p[3] == "zeroshot_top1" else "tab:blue" for p in points])
            for lat, acc, name, _ in points:
                ax.annotate(name, (lat, acc), textcoords="offset points", xytext=(4, 3), fontsize=7)
            front, best = [], -1.0
            for lat, acc, _, metric in points:
                if metric != "zeroshot_top1" and acc > best:
                    front.append((lat, acc))
                    best = acc
            if front:
                ax.plot([p[0] for p in front], [p[1] for p in front], "--", color="gray", label="Pareto front")
                ax.legend(loc="lower right")
            ax.set_xscale("log")
        ax.set_xlabel(f"latency, batch 1, {backend} (ms, log scale) on {m.get('gpu') or m['cpu']}, {m['threads']} threads")
        ax.set_ylabel(ylabel)
        ax.set_title("Measured latency vs reported accuracy")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def format_table(document: dict[str, Any], names: Sequence[str] | None = None) -> Any:
    from rich.table import Table

    m = document["machine"]
    peak = m.get("peak_matmul_gflops")
    table = Table(title=f"{m.get('gpu') or m['cpu']}, {m['threads']} threads, torch {m['torch']}"
                  + (f"; matmul peak {peak:.0f} GFLOP/s" if peak else ""))
    for col in ("model", "backend", "precision", "batch", "input", "params", "GMACs", "p50 ms", "p90 ms", "img/s", "% of peak", "mem MB"):
        table.add_column(col, justify="left" if col in ("model", "backend", "precision") else "right")
    for r in document["results"]:
        if names is not None and r["model"] not in names:
            continue
        precision = r.get("precision", "fp32")
        if "error" in r:
            table.add_row(r["model"], r["backend"], precision, str(r["batch"]), _size_label(r["input_size"]), "", "", r["error"][:60],
                          "", "", "", "")
            continue
        table.add_row(
            r["model"], r["backend"], precision, str(r["batch"]), _size_label(r["input_size"]), f"{r['params'] / 1e6:.2f}M",
            f"{r['macs'] / 1e9:.3f}", f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}", f"{r['throughput_per_s']:.1f}",
            f"{100 * r['fraction_of_peak']:.1f}" if "fraction_of_peak" in r else "", f"{r.get('peak_cuda_mb', r['peak_rss_growth_mb']):.0f}",
        )
    return table


def best_forms(document: dict[str, Any], names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per (model, batch, input, threads): the fastest verified (backend, precision), its p50 and its speed-up over
    onnxruntime fp32 measured in the same run (None where that baseline is missing). Eager and compile are
    candidates too: a model may have no export that beats PyTorch."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in document["results"]:
        if "p50_ms" in r and (names is None or r["model"] in names):
            groups.setdefault((r["model"], r["batch"], tuple(r["input_size"]), r["threads"], r["device"]), []).append(r)
    best = []
    for (model, batch, size, threads, device), rows in groups.items():
        fastest = min(rows, key=lambda r: r["p50_ms"])
        base = next((r for r in rows if r["backend"] == "onnxruntime" and r.get("precision", "fp32") == "fp32"), None)
        eager = next((r for r in rows if r["backend"] == "torch"), None)
        best.append({"model": model, "batch": batch, "input_size": list(size), "threads": threads, "device": device,
                     "backend": fastest["backend"], "precision": fastest.get("precision", "fp32"), "p50_ms": fastest["p50_ms"],
                     "onnxruntime_fp32_ms": base["p50_ms"] if base else None, "eager_ms": eager["p50_ms"] if eager else None,
                     "speedup_vs_onnxruntime_fp32": base["p50_ms"] / fastest["p50_ms"] if base else None,
                     "measured": fastest.get("measured")})
    return best


def format_best(document: dict[str, Any], names: Sequence[str] | None = None) -> Any:
    from rich.table import Table

    m = document["machine"]
    table = Table(title=f"Fastest verified deploy form per model ({m.get('gpu') or m['cpu']}, {m['threads']} threads)")
    for col in ("model", "batch", "input", "fastest", "p50 ms", "onnxruntime fp32 ms", "speed-up", "eager ms"):
        table.add_column(col, justify="left" if col in ("model", "fastest") else "right")
    for b in best_forms(document, names):
        speedup = b["speedup_vs_onnxruntime_fp32"]
        table.add_row(b["model"], str(b["batch"]), _size_label(b["input_size"]), f"{b['backend']} {b['precision']}",
                      f"{b['p50_ms']:.2f}", f"{b['onnxruntime_fp32_ms']:.2f}" if b["onnxruntime_fp32_ms"] else "-",
                      f"{speedup:.2f}x" if speedup else "-", f"{b['eager_ms']:.2f}" if b["eager_ms"] else "-")
    return table


def _size_label(size) -> str:
    """HxW for images, "N tok" for a language model's tokens."""
    return f"{size[0]} tok" if len(size) == 1 else "x".join(map(str, size[1:]))
