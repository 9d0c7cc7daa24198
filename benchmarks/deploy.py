"""Deploy forms on this CPU: every runtime and precision against onnxruntime fp32, batch 1, 1 and 2 threads.

    python benchmarks/deploy.py [--models NAME ...] [--threads 1 2] [--runs 100] [--update-readme]

For each model (each at its own input size: 224 for classifiers, 640 for YOLOv10, 320 for MobileDets) the
script writes every verified export once (onnxruntime fp32 and int8; OpenVINO fp32, bf16 hint and int8;
ExecuTorch fp32 and int8; LiteRT fp32 and int8; int8 calibrated on random inputs, which sets its speed, not
its accuracy: `zoo quantize` measures that), then, for each thread count, opens them all in their runtimes
and times them in interleaved rounds (so a machine that gets busier hurts every form alike), onnxruntime with
thread spinning off. Ratios are onnxruntime fp32's p50 over each form's p50 (above 1: faster), measured in the
same process and rounds. Targets: the fastest verified form >= 2x onnxruntime fp32 at the median,
no model below 1.0x; int8 >= 1.5x on efficientformer_l1, mobileone_s0, nextvit_small, yolov10n and
mobiledet_cpu on their best runtime. ``--update-readme`` writes the table between the deploy markers and the
raw numbers to ``docs/deploy_benchmark.json``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MODELS = ("mobilenetv3_small_100", "mobilenetv3_large_100", "mnasnet_100", "mobileone_s0", "efficientformer_l1",
          "efficientformerv2_s0", "fastvit_mci0", "nextvit_small", "yolov10n", "mobiledet_cpu")
FORMS = (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"),
         ("executorch", "fp32"), ("executorch", "int8"), ("litert", "fp32"), ("litert", "int8"))
INT8_TARGETS = ("efficientformer_l1", "mobileone_s0", "nextvit_small", "yolov10n", "mobiledet_cpu")


def measure(name: str, threads: list[int], runs: int) -> dict:
    import torch

    import zoo
    from zoo.bench import RUNTIME_FORMATS, export_form, open_runtime, settle_batchnorm, time_interleaved
    from zoo.export import checked_input_size, deploy_form, example_input

    model = zoo.load(name).eval()
    spec = model.zoo_spec
    size = checked_input_size(spec, None)
    settle_batchnorm(model, size[-1])
    model = deploy_form(model)
    x = example_input(spec, size, 1, torch.Generator().manual_seed(0))
    if spec.task == "detection":
        x = torch.rand(1, *size, generator=torch.Generator().manual_seed(0))
    result = {"model": name, "input": list(size), "threads": {}, "errors": {}, "notes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for backend, precision in FORMS:
            try:
                paths[(backend, precision)] = export_form(model, x, backend, precision, Path(tmp))
            except Exception as e:  # noqa: BLE001 - a form that cannot be made is reported, the others go on
                result["errors"][f"{backend} {precision}"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            else:
                report = json.loads(Path(f"{paths[(backend, precision)]}.verification.json").read_text())
                if report.get("notes"):
                    result["notes"][f"{backend} {precision}"] = report["notes"]
        feed = x.numpy()
        for n in threads:
            runners = {}
            for (backend, precision), path in paths.items():
                run = open_runtime(RUNTIME_FORMATS[backend], path, n)
                runners[f"{backend} {precision}"] = (lambda r=run: r(feed))
            eager = model
            runners["torch fp32"] = lambda: eager(x)
            with torch.inference_mode():
                timed = time_interleaved(runners, runs, warmup=5, rounds=5, threads=n)
            result["threads"][str(n)] = {k: {s: v[s] for s in ("p50_ms", "p90_ms", "mean_ms")} for k, v in timed.items()}
    return result


def p50s(entry: dict, n: str) -> dict[str, float]:
    return {k: v["p50_ms"] if isinstance(v, dict) else v for k, v in entry["threads"][n].items()}


def ratios(entry: dict, n: str) -> dict[str, float]:
    p50 = p50s(entry, n)
    base = p50.get("onnxruntime fp32")
    return {k: base / v for k, v in p50.items()} if base else {}


def bench_documents(results: list[dict], machine: dict) -> dict[str, dict]:
    """The timings as `zoo bench` documents (one per thread count, keyed like `zoo bench` keys them), so model
    cards cite them with their machine and date. p90 and throughput appear only where this run recorded them."""
    from zoo.bench import machine_key

    documents = {}
    for r in results:
        for n, forms in r["threads"].items():
            info = {**machine, "threads": int(n)}
            doc = documents.setdefault(machine_key(info), {"machine": info, "results": []})
            for form, t in forms.items():
                backend, precision = form.split()
                row = {"model": r["model"], "backend": backend, "precision": precision, "batch": 1, "input_size": r["input"],
                       "threads": int(n), "device": "cpu", "measured": machine["date"], "source": "benchmarks/deploy.py"}
                row.update(t if isinstance(t, dict) else {"p50_ms": t})
                if "mean_ms" in row:
                    row["throughput_per_s"] = 1e3 / row["mean_ms"]
                doc["results"].append(row)
    return documents


def table(results: list[dict], info: str) -> str:
    forms = [f"{b} {p}" for b, p in FORMS] + ["torch fp32"]
    lines = [info, ""]
    for n in sorted({t for r in results for t in r["threads"]}):
        lines += [f"**{n} thread{'s' if n != '1' else ''}**: onnxruntime fp32 ms, then each form's speed-up over it "
                  "(above 1.00x: faster; - : the form could not be made, see the notes below the table)", "",
                  "| model | input | ORT fp32 ms | " + " | ".join(f.replace("onnxruntime", "ORT") for f in forms[1:])
                  + " | fastest |", "|---|---|---:|" + "---:|" * (len(forms) - 1) + "---|"]
        for r in results:
            if n not in r["threads"]:
                continue
            q = ratios(r, n)
            base = p50s(r, n).get("onnxruntime fp32")
            best = max(q, key=q.get) if q else None
            cells = [f"{q[f]:.2f}x" if f in q else "-" for f in forms[1:]]
            lines.append(f"| {r['model']} | {r['input'][-1]} | {f'{base:.2f}' if base else '-'} | " + " | ".join(cells)
                         + (f" | {best} ({q[best]:.2f}x) |" if best else " | - |"))
        best_ratios = [max(ratios(r, n).values()) for r in results if ratios(r, n)]
        if best_ratios:
            lines += ["", f"Fastest verified form over onnxruntime fp32, {n} thread(s): median {statistics.median(best_ratios):.2f}x, "
                      f"lowest {min(best_ratios):.2f}x (over the {len(best_ratios)} models above)."]
        int8 = {r["model"]: max((v for k, v in ratios(r, n).items() if k.endswith("int8")), default=None)
                for r in results if r["model"] in INT8_TARGETS}
        if int8:
            lines += ["", f"Best int8 over onnxruntime fp32, {n} thread(s): "
                      + ", ".join(f"{m} {v:.2f}x" if v else f"{m} -" for m, v in int8.items()) + "."]
        lines.append("")
    errors = [f"- {r['model']}, {form}: {why}" for r in results for form, why in r["errors"].items()]
    if errors:
        lines += ["Forms that could not be made:", "", *errors, ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "runs" / "deploy_benchmark.json"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    import zoo
    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.environment import machine

    m = machine()
    out = Path(args.out)
    results = json.loads(out.read_text())["results"] if out.is_file() else []
    done = {r["model"] for r in results}
    for name in args.models:
        zoo.info(name)  # unknown names fail before any work
        if name in done:
            continue
        entry = measure(name, args.threads, args.runs)
        results.append(entry)
        atomic_write_json(out, {"machine": m, "results": results}, indent=1)
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios(entry, str(args.threads[-1])).items()), flush=True)
    info = (f"Batch 1, p50 of {args.runs} runs in 5 interleaved rounds, measured by `python benchmarks/deploy.py` on "
            f"{m['cpu']}, torch {m['torch']}, {m['date']}; untrained weights, int8 calibrated on random "
            "inputs (speed only; accuracy: `zoo quantize`, below):")
    text = table(results, info)
    print(text)
    if args.update_readme:
        atomic_write_json(ROOT / "docs" / "deploy_benchmark.json", {"machine": m, "results": results}, indent=1)
        for key, doc in bench_documents(results, m).items():  # what `zoo card --all` cites (it reads runs/bench first)
            path = ROOT / "runs" / "bench" / f"{key}.json"
            old = json.loads(path.read_text()) if path.is_file() else {"machine": doc["machine"], "results": []}
            mine = {(r["model"], r["backend"], r.get("precision", "fp32"), r["batch"]) for r in doc["results"]}
            kept = [r for r in old["results"] if (r["model"], r["backend"], r.get("precision", "fp32"), r["batch"]) not in mine]
            atomic_write_json(path, {"machine": doc["machine"], "results": kept + doc["results"]})
            print(f"wrote {path}")
        print(f"updated {fill_marked_section(README, 'deploy', text)}")


if __name__ == "__main__":
    main()
