"""``zoo card``: Hugging Face model cards generated from what this repo knows and measures.

A card is rendered with ``huggingface_hub``'s card classes (``ModelCardData`` for the YAML front matter,
``EvalResult`` for the ``model-index``). Every number in it comes from somewhere named next to it:

- params and MACs are computed when the card is written, the way ``zoo bench`` computes them (the deploy
  form, ``torch.utils.flop_counter``), and stored in the front matter under ``efficient_zoo`` so a test can
  tell when a committed card has gone stale;
- latency rows are read from ``zoo bench`` JSON documents and keep their machine and date (they are not
  re-measured when the card is regenerated);
- a run's card takes its results from the run's ``summary.json``, its recipe from the saved ``config.yaml``
  and its exports from the verification reports ``zoo export`` writes next to each file;
- paper numbers are labelled "reported" with their source.

The body is plain Markdown written here: the Hub's default card template asks for prose this repo cannot
measure, and the sections the issue lists are all data we hold.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from zoo._io import atomic_write_json, atomic_write_text
from zoo.errors import BadArgumentError
from zoo.interop import PREPROCESSOR_NAME
from zoo.task_table import TASKS

# Licence ids the Hub knows; anything else is written as `license: other` with `license_name`.
HUB_LICENSES = {"apache-2.0", "mit", "agpl-3.0", "gpl-3.0", "bsd-3-clause", "bsd-2-clause", "cc-by-4.0",
                "cc-by-nc-4.0", "cc-by-sa-4.0", "cc-by-nc-sa-4.0", "openrail", "llama2", "other"}
DATASET_IDS = {"imagenet-1k": "imagenet-1k", "coco-2017": "detection-datasets/coco", "digits": "digits",
               "shapes": "shapes"}
FACTS_KEY = "efficient_zoo"
BENCH_SUBDIR = "bench"  # model_cards/bench/: the zoo bench documents the committed cards were written from


# -- what the card is about ----------------------------------------------------------------------------


def run_dir_of(source: str | os.PathLike) -> Path | None:
    """``source`` as a ``zoo train`` run directory (it has ``summary.json`` and ``model/``), else ``None``."""
    path = Path(source)
    return path if (path / "summary.json").is_file() and (path / "model" / "config.json").is_file() else None


def measure(source: str | os.PathLike) -> dict[str, Any]:
    """Params and MACs of ``source``'s deploy form at its input size, as ``zoo bench`` counts them."""
    import torch

    import zoo
    from zoo.bench import count_macs
    from zoo.export import checked_input_size, deploy_form, example_input

    model = deploy_form(zoo.load(str(source)))
    spec = model.zoo_spec
    size = checked_input_size(spec, None)
    x = example_input(spec, size, 1, torch.Generator().manual_seed(0))
    return {"params": sum(p.numel() for p in model.parameters()), "macs": int(count_macs(model, x)),
            "input_size": list(size), "spec": spec}


def licence_facts(spec, trained_here: bool = False) -> dict[str, Any]:
    """The licence of the code, and of the weights the card describes: the tag's (a name's default tag, or the
    published weights a run started from); weights trained here from scratch carry the code's licence."""
    if spec.tag and spec.has_weights:
        weights_license = spec.weight(spec.tag).license
    else:
        weights_license = spec.license if trained_here else None
    return {"code_license": spec.license, "weights_license": weights_license}


def card_facts(source: str | os.PathLike) -> dict[str, Any]:
    """The checkable facts a card stores in its front matter (the stale-card test recomputes these)."""
    measured = measure(source)
    spec = measured.pop("spec")
    trained_here = Path(str(source)).is_dir()
    if not trained_here:
        spec = _subject(source)  # a name's card describes its default weights (and their licence)
    return {"model": spec.name, **measured, **licence_facts(spec, trained_here)}


# -- speed rows from zoo bench -------------------------------------------------------------------------


def bench_documents(dirs: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """Every ``zoo bench`` document (``{"machine": {...}, "results": [...]}``) in ``dirs``; the first copy of
    a machine wins row by row, so a fresh ``runs/bench`` overrides an older committed copy."""
    merged: dict[str, dict[str, Any]] = {}
    for folder in dirs:
        for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else ():
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not (isinstance(doc, dict) and isinstance(doc.get("machine"), dict) and isinstance(doc.get("results"), list)
                    and all(isinstance(r, dict) and "backend" in r and "input_size" in r for r in doc["results"])):
                continue  # another script's JSON (benchmarks/*.py)
            key = path.stem
            if key not in merged:
                merged[key] = {"machine": doc["machine"], "results": list(doc["results"]), "file": path.name}
            else:
                have = {_row_key(r) for r in merged[key]["results"]}
                merged[key]["results"] += [r for r in doc["results"] if _row_key(r) not in have]
    return list(merged.values())


def _row_key(row: dict[str, Any]) -> tuple:
    return (row.get("model"), row.get("backend"), row.get("precision", "fp32"), row.get("batch"), tuple(row.get("input_size") or ()),
            row.get("threads"), row.get("device"))


def speed_rows(model: str, documents: Sequence[dict[str, Any]], input_size: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Timed rows of ``model`` (optionally at ``input_size``) with their machine attached."""
    rows = []
    for doc in documents:
        for r in doc["results"]:
            if r.get("model") == model and "p50_ms" in r and (input_size is None or list(r["input_size"]) == list(input_size)):
                rows.append({**r, "machine": doc["machine"]})
    return sorted(rows, key=lambda r: (r["machine"].get("gpu") or r["machine"]["cpu"], r["machine"].get("threads", 0), r["batch"],
                                       r["backend"], r.get("precision", "fp32")))


def fastest_form(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Among batch-1 rows measured on one machine (the most threads there), the fastest verified (backend, precision)
    with its speed-up over onnxruntime fp32 and the eager latency of the same run, or None without a runtime row."""
    from zoo.bench import best_forms

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r["batch"] == 1 and r["backend"] != "compile":
            groups.setdefault((machine_label(r["machine"]), r["threads"]), []).append(r)
    candidates = [(key, g) for key, g in groups.items() if any(r["backend"] not in ("torch", "compile") for r in g)]
    if not candidates:
        return None
    (label, _), group = max(candidates, key=lambda kg: (len({r["backend"] for r in kg[1]}), kg[0][1]))
    (best,) = best_forms({"results": group}) or [None]
    return {**best, "machine": label} if best else None


def machine_label(m: dict[str, Any]) -> str:
    where = m.get("gpu") or m["cpu"]
    versions = ", ".join(f"{k} {m[k]}" for k in ("python", "torch", "lightning", "onnxruntime") if m.get(k))
    return f"{where}, {m['threads']} threads ({versions})"


# -- recipes -------------------------------------------------------------------------------------------


def recipes_for(model: str) -> list[dict[str, Any]]:
    """Recipes that train ``model``, each with the measured block from its header."""
    from zoo.config import list_recipes, recipe_path
    from zoo.train import MEASURED_END, MEASURED_START

    found = []
    for recipe in list_recipes():
        path = recipe_path(recipe)
        text = path.read_text()
        name = _recipe_model(text)
        if name != model:
            continue
        lines, inside = [], False
        for line in text.splitlines():
            if MEASURED_START in line:
                inside = True
                continue
            if MEASURED_END in line:
                break
            if inside:
                lines.append(line.lstrip("# ").rstrip())
        found.append({"recipe": recipe, "measured": lines})
    return found


def _recipe_model(text: str) -> str | None:
    """The model a recipe trains: an explicit ``model.name`` or its ``model:`` defaults entry's own name."""
    import yaml

    from zoo.config import conf_dir

    body = yaml.safe_load(text) or {}
    explicit = (body.get("model") or {}).get("name") if isinstance(body.get("model"), dict) else None
    if explicit:
        return explicit
    for entry in body.get("defaults", []):
        if isinstance(entry, dict) and "model" in entry:
            option = conf_dir() / "model" / f"{entry['model']}.yaml"
            if option.is_file():
                return (yaml.safe_load(option.read_text()) or {}).get("model", {}).get("name") or entry["model"]
            return entry["model"]
    return None


# -- rendering -----------------------------------------------------------------------------------------


def _dataset_ids(text: str) -> list[str]:
    """Hub dataset ids from a weights tag's dataset ("ssld-6m -> imagenet-1k", "objects365+coco-2017")."""
    import re

    names = [re.sub(r"\s*\(.*\)", "", part).strip() for part in re.split(r"->|\+", text or "")]
    return [DATASET_IDS.get(n, n) for n in names if n]


def _fmt_count(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def _fmt_size(size: Sequence[int]) -> str:
    return f"{size[0]} tokens" if len(size) == 1 else f"{size[1]}x{size[2]} ({size[0]} channels)"


def _reported_lines(spec) -> list[str]:
    lines = []
    for r in spec.reported:
        where = f" on {r.dataset}" if r.dataset else ""
        at = f" at {r.resolution}px" if r.resolution and r.metric not in ("params",) else ""
        note = f"; {r.note}" if r.note else ""
        lines.append(f"- {r.metric}{where}{at}: **{r.value}{r.unit}** (reported, {r.source}{note})")
    return lines


def library_of(folder: Path | None) -> str:
    """The library that loads a saved folder (or a run's model/) as published: ``timm`` or ``transformers`` for
    their layouts (:mod:`zoo.interop`), else the zoo; the Hub shows that library's usage snippet."""
    if folder is None:
        return "efficient-zoo"
    config = (folder / "model" if (folder / "model" / "config.json").is_file() else folder) / "config.json"
    try:
        written = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "efficient-zoo"
    if not isinstance(written, dict):
        return "efficient-zoo"
    return "timm" if "pretrained_cfg" in written else "transformers" if "model_type" in written else "efficient-zoo"


def _front_matter(spec, facts: dict[str, Any], datasets: list[str], eval_results: list, tags: list[str], library: str):
    from huggingface_hub import ModelCardData

    licence = facts["weights_license"] or facts["code_license"]
    extra = {} if licence in HUB_LICENSES else {"license_name": licence}
    return ModelCardData(
        license=licence if licence in HUB_LICENSES else "other",
        library_name=library,
        pipeline_tag=TASKS[spec.task].pipeline_tag,
        tags=tags,
        datasets=datasets or None,
        model_name=facts.get("card_name") or spec.name,
        eval_results=eval_results or None,
        **extra,
        **{FACTS_KEY: {k: facts[k] for k in CHECKED_FACTS}},
    )


def _eval_results(spec, summary: dict[str, Any]) -> list:
    from huggingface_hub import EvalResult

    task = TASKS[spec.task].pipeline_tag
    dataset = str(summary.get("data", "")).split(":", 1)[0] or "validation"
    metrics = {"val_top1": ("accuracy", "top-1 accuracy"), "val_map": ("map", "mAP@[.5:.95]"), "val_map50": ("map", "mAP@.5"),
               "val_bpt": ("bits-per-token", "bits per token"), "val_loss": ("loss", "cross-entropy loss")}
    results = []
    for key, (metric, label) in metrics.items():
        if key in summary and (key != "val_loss" or "val_top1" not in summary):
            results.append(EvalResult(task_type=task, dataset_type=dataset, dataset_name=dataset, dataset_split="validation",
                                      metric_type=metric, metric_name=label, metric_value=round(float(summary[key]), 4)))
    return results


def _subject(source: str | os.PathLike):
    """The spec a card describes: a run's or folder's own (labels, classes), or the registry's for a name."""
    from zoo.registry import get_spec, split_name

    if Path(str(source)).is_dir():
        import zoo

        return zoo.load(str(source)).zoo_spec
    arch, tag = split_name(str(source))
    spec = get_spec(arch)
    return spec.for_weights(tag or spec.default_tag) if spec.has_weights else spec


def build_card(source: str | os.PathLike, *, bench_dirs: Sequence[str | os.PathLike] = ("runs/bench",), facts: dict | None = None,
               repo_id: str | None = None):
    """The card of a registered name (``arch`` or ``arch.tag``), a ``zoo train`` run or a ``zoo.save`` folder
    (``repo_id``: the Hub repo it is being pushed to, for the loading example)."""
    from huggingface_hub import ModelCard

    import zoo

    run = run_dir_of(source)
    folder = Path(str(source)) if Path(str(source)).is_dir() else None  # a run or a zoo.save folder
    spec = _subject(source)
    facts = dict(facts or card_facts(source))
    summary = json.loads((run / "summary.json").read_text()) if run else None
    if folder is not None:  # published weights only if it was loaded from (or fine-tuned from) them
        weights = spec.weight(spec.tag) if spec.tag and spec.has_weights else None
    else:
        weights = spec.weight(spec.tag) if spec.has_weights else None
    bench_name = str(folder.resolve()) if folder else spec.name
    speeds = speed_rows(bench_name, bench_documents(bench_dirs), facts["input_size"])
    if summary:
        datasets = [str(summary.get("data", "")).split(":", 1)[0]]
    else:
        datasets = _dataset_ids(weights.dataset) if weights else []
    tags = ["efficient-zoo", spec.family, spec.task] + (["spiking-neural-network"] if spec.family == "snn" else []) \
        + (["onnx"] if run and list((run / "export").glob("*.onnx")) else [])
    title = f"{summary['recipe']}: {spec.name} trained with efficient-zoo" if summary else spec.name + (f".{spec.tag}" if spec.tag else "")
    library = library_of(folder)
    data = _front_matter(spec, {**facts, "card_name": title}, [d for d in datasets if d],
                         _eval_results(spec, summary) if summary else [], tags, library)

    body = [f"# {title}", ""]
    body += _summary_section(spec, summary, weights, folder, repo_id if folder else None, library)
    body += _architecture_section(spec, facts, checked=folder is None)
    shown = ("RUN" if run else "FOLDER") if folder else str(source)  # a local path means nothing on the Hub
    body += _speed_section(shown if folder else spec.name, speeds)
    body += _training_section(spec, run, summary)
    body += _compression_section(run, folder)
    body += _export_section(spec, run)
    body += _limitations_section(spec, weights, summary)
    body += _provenance_section(spec, folder)
    body += _citation_section(spec)
    body += ["---", "", f"Generated by `zoo card {shown}` (efficient-zoo {zoo.__version__}) on {date.today().isoformat()}.", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def _summary_section(spec, summary, weights, folder: Path | None, repo_id: str | None, library: str = "efficient-zoo") -> list[str]:
    use = TASKS[spec.task].output
    zero_shot = getattr(spec.builder, "zero_shot", False) and not spec.num_classes  # an image-text model, no head yet
    classes = ("the labels given to zoo.load (zero-shot); without labels it returns image embeddings" if zero_shot else
               str(spec.num_classes) + (f" ({', '.join(spec.labels[:10])}{', ...' if len(spec.labels) > 10 else ''})" if spec.labels else ""))
    lines = ["## Summary and intended use", "", spec.description or spec.name, "",
             f"- Task: {use}.",
             f"- Family: `{spec.family}`; classes: {classes}."]
    if summary:
        lines.append(f"- Trained here with recipe `{summary['recipe']}` on {summary['data']}.")
    elif folder is not None:
        lines.append("- A model saved with `zoo.save`" + (f", holding or fine-tuned from the published weights `{spec.name}.{weights.tag}`"
                                                         if weights else "") + ".")
    elif weights:
        lines.append(f"- Weights `{spec.name}.{weights.tag}`: {weights.dataset or 'see provenance'}"
                     + (f" ({weights.description})" if weights.description else "") + ".")
    else:
        lines.append("- No published weights: the architecture, to train with a recipe (`zoo train`) or to load weights into (`weights=PATH`).")
    note = ""
    if repo_id:
        load = f'zoo.load("hf-hub:{repo_id}")'
    elif folder is not None:
        load, note = f'zoo.load("{"RUN_DIR" if summary else "FOLDER"}")', '  # or "hf-hub:ORG/NAME" once `zoo push` published it'
    elif weights and zero_shot:
        load = f'zoo.load("{spec.name}.{weights.tag}", labels=["forklift", "pallet", "person"])'
    elif weights:
        from zoo.weights import PICKLE_SUFFIXES

        pickled = ", allow_pickle=True" if weights.filename.endswith(PICKLE_SUFFIXES) else ""  # read as tensors only
        load = f'zoo.load("{spec.name}.{weights.tag}", pretrained=True{pickled})'
    else:
        load = f'zoo.load("{spec.name}")'
    lines += ["", "```python", "import zoo", "", f"model = {load}.eval(){note}", "```", ""]
    if library == "timm":  # saved in timm's layout (zoo.interop): timm alone reads it too
        where = f"hf-hub:{repo_id}" if repo_id else f"local-dir:{'RUN_DIR/model' if summary else 'FOLDER'}"
        lines += ["Or with timm alone, labels and preprocessing included:", "", "```python", "import timm", "",
                  f'model = timm.create_model("{where}", pretrained=True).eval()', "```", ""]
    if library == "transformers":  # saved as transformers writes it (zoo.interop), with its image processor's settings
        where = repo_id or ("RUN_DIR/model" if summary else "FOLDER")
        lines += ["Or with transformers alone, labels and preprocessing included:", "", "```python", "from PIL import Image",
                  "from transformers import AutoImageProcessor, AutoModelForObjectDetection", "",
                  f'processor = AutoImageProcessor.from_pretrained("{where}")',
                  f'model = AutoModelForObjectDetection.from_pretrained("{where}").eval()',
                  'image = Image.open("image.jpg").convert("RGB")',
                  'outputs = model(**processor(images=image, return_tensors="pt"))',
                  "found = processor.post_process_object_detection(outputs, threshold=0.5, target_sizes=[image.size[::-1]])[0]",
                  'print([(model.config.id2label[int(c)], round(float(s), 2)) for c, s in zip(found["labels"], found["scores"])])',
                  "```", ""]
    return lines


def _architecture_section(spec, facts, checked: bool) -> list[str]:
    return ["## Architecture", "",
            "| family | variant | input | params | MACs |", "|---|---|---|---:|---:|",
            f"| {spec.family} | {spec.name} | {_fmt_size(facts['input_size'])} | {facts['params']:,} ({_fmt_count(facts['params'])}) "
            f"| {facts['macs']:,} ({_fmt_count(facts['macs'])}) |", "",
            "Params and MACs are computed by `zoo bench` on the deploy form (re-parameterisable branches folded, batch 1, "
            "MACs = FLOPs / 2 from `torch.utils.flop_counter`) when this card was written"
            + ("; `tests/test_cards.py` fails when they stop matching the code." if checked else "."), ""] + (["Reported by the paper:", ""] + _reported_lines(spec) + [""] if spec.reported else [])


def _opt(row: dict[str, Any], key: str, digits: int) -> str:
    return f"{row[key]:.{digits}f}" if row.get(key) is not None else "-"


def _speed_section(shown: str, rows: list[dict[str, Any]]) -> list[str]:
    lines = ["## Speed", ""]
    if not rows:
        return lines + [f"Not measured yet. Measure it with `zoo bench {shown}`, then regenerate this card.", ""]
    machines: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        machines.setdefault(machine_label(r["machine"]), []).append(r)
    for label, group in machines.items():
        lines += [f"On {label}:", "", "| backend | precision | batch | input | p50 ms | p90 ms | items/s | measured |",
                  "|---|---|---:|---|---:|---:|---:|---|"]
        lines += [f"| {r['backend']} | {r.get('precision', 'fp32')} | {r['batch']} | {'x'.join(map(str, r['input_size']))} "
                  f"| {r['p50_ms']:.2f} | {_opt(r, 'p90_ms', 2)} | {_opt(r, 'throughput_per_s', 1)} "
                  f"| {r.get('measured', r['machine'].get('date', '?'))} |"
                  for r in group]
        lines.append("")
    best = fastest_form(rows)
    if best and best["speedup_vs_onnxruntime_fp32"]:
        eager = f"; eager PyTorch {best['eager_ms']:.2f} ms" if best["eager_ms"] else ""
        lines += [f"Fastest verified deploy form on {best['machine']}: **{best['backend']} {best['precision']}**, "
                  f"{best['p50_ms']:.2f} ms at batch 1 ({best['speedup_vs_onnxruntime_fp32']:.2f}x onnxruntime fp32{eager}); "
                  "int8 rows were calibrated on random inputs (speed); `zoo quantize` measures int8 accuracy.", ""]
    return lines + [f"Measured by `zoo bench {shown}` (p50/p90 over at least 50 timed runs after warm-up; rows of the deploy "
                    "runtimes may come from `python benchmarks/deploy.py`, 100 runs in 5 interleaved rounds). Latency is "
                    "not re-measured when the card is regenerated: each row keeps the date and machine it was measured on.", ""]


def _training_section(spec, run: Path | None, summary) -> list[str]:
    lines = ["## Training", ""]
    if run:
        command = _run_command(run)
        lines += [f"Trained by `{command}` in {summary['wall_time_s']:.0f} s on {machine_label(summary['machine'])}, "
                  f"{summary['machine']['date']}, {summary['epochs']} epochs on {summary['data']}.", "",
                  "| metric (validation) | value |", "|---|---:|"]
        for key in ("val_top1", "val_map", "val_map50", "val_loss", "val_bpt"):
            if key in summary:
                lines.append(f"| {key[4:]} | {summary[key]:.4f} |")
        lines += ["", "The resolved recipe is `recipe.yaml` next to this card (the run's `config.yaml`).", ""]
        return lines
    recipes = recipes_for(spec.name)
    if not recipes:
        row = next((r for r in TASKS.values() if r.trains(spec)), TASKS[spec.task])
        return lines + [(f"No recipe in this repo trains `{spec.name}` yet. Any {row.name} recipe takes it: "
                         f"`zoo train recipe={row.example_recipe} model.name={spec.name}`."), ""]
    for r in recipes:
        lines += [f"- `zoo train recipe={r['recipe']}`" + (":" if r["measured"] else " (not measured yet)")]
        lines += [f"  - {line}" for line in r["measured"] if line and not line.startswith("(written")]
    return lines + ["", "Each recipe's numbers are written into its header by the command shown (`record_result=true`).", ""]


def _run_command(run: Path) -> str:
    """The ``zoo train`` command of a run: its Hydra overrides as typed, or, for a run started from Python, the
    settings where its saved config differs from its recipe's."""
    import yaml

    summary = json.loads((run / "summary.json").read_text())
    path = run / ".hydra" / "overrides.yaml"
    if path.is_file():
        overrides = [o for o in (yaml.safe_load(path.read_text()) or []) if not o.startswith(("record_result", "out_dir"))]
    else:
        overrides = _differences(summary["recipe"], yaml.safe_load((run / "config.yaml").read_text()) or {})
    if not any(o.startswith("recipe=") for o in overrides):
        overrides.insert(0, f"recipe={summary['recipe']}")
    return "zoo train " + " ".join(_without_local_paths(o) for o in overrides)


def _without_local_paths(value: Any) -> Any:
    """A setting as it may be published: an absolute local path (``/home/me/data/flowers``, ``~/x``, ``C:\\x``)
    keeps only its last part (``<local>/flowers``), in strings, ``key=value`` overrides, lists and mappings."""
    import re

    if isinstance(value, dict):
        return {k: _without_local_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_local_paths(v) for v in value]
    if not isinstance(value, str):
        return value
    key, sep, rest = value.partition("=")
    if sep and re.fullmatch(r"[+~]?[\w.]+", key):
        return f"{key}={_without_local_paths(rest)}"
    if re.match(r"^(/|~|[A-Za-z]:[\\/])", value):
        return f"<local>/{Path(value.replace(chr(92), '/')).name}"
    return value


def _differences(recipe: str, saved: dict) -> list[str]:
    from omegaconf import OmegaConf

    from zoo.config import compose

    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(d, dict) and d:
            return {k: v for key, value in d.items() for k, v in flat(value, f"{prefix}{key}.").items()}
        return {prefix[:-1]: d}

    default = flat(OmegaConf.to_container(compose(recipe), resolve=True))
    mine = flat(saved)
    skip = ("out_dir", "record_result")
    return [f"{k}={v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}" for k, v in mine.items()
            if k not in skip and default.get(k, object()) != v]


def _compression_section(run: Path | None, folder: Path | None) -> list[str]:
    lines = ["## Compression", ""]
    plugins = {}
    if run and (run / "config.yaml").is_file():
        import yaml

        plugins = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("plugins") or {}
    if folder is not None and run is None:
        return lines + ["Not recorded: a `zoo.save` folder keeps the model, not how it was trained.", ""]
    if not plugins:
        return lines + ["None applied" + (" in this run." if run else ": the architecture as published. Distillation, QAT, "
                        "pruning and the other plugins compose in `zoo train ... plugins=[...]`."), ""]
    for name, settings in plugins.items():
        shown = ", ".join(f"{k}={v}" for k, v in (settings or {}).items())
        lines.append(f"- `{name}`: {shown}")
    return lines + [""]


def _export_section(spec, run: Path | None) -> list[str]:
    lines = ["## Exports", ""]
    reports = sorted((run / "export").glob("*.verification.json")) if run else []
    if reports:
        lines += ["| file | format | verified on | max abs diff | tolerance | cosine |", "|---|---|---|---:|---:|---:|"]
        for path in reports:
            report = json.loads(path.read_text())
            for kind, check in report.get("verification", {}).items():
                if isinstance(check, dict) and "max_abs_diff" in check:
                    lines.append(f"| `{report['file']}` | {report['format']} | {kind} input | {check['max_abs_diff']:.3g} "
                                 f"| {check['tolerance']:.3g} | {check['cosine']:.6f} |")
        return lines + ["", "Each export was checked against PyTorch by `zoo export` when it was written.", ""]
    source = "RUN" if run else spec.name
    return lines + [
        f"`zoo export {source} --format onnx` writes an ONNX file verified against PyTorch on a random and a real image "
        "(fp32 tolerance 1e-4 + 1e-5 x max|output|); `--format coreml` and `--format tensorrt` (CUDA GPU) likewise."
        + ("" if run else " The ONNX export of every registered model is verified on each CI run (`tests/test_export.py`, "
           "at a reduced input size)."), ""]


def _limitations_section(spec, weights, summary) -> list[str]:
    lines = ["## Limitations", ""]
    if summary:
        lines.append(f"- Trained and evaluated only on {summary['data']}: the numbers above say nothing about other data.")
    if not weights and not summary:
        lines.append("- Randomly initialised until trained: it predicts nothing useful as loaded.")
    if spec.reported:
        lines.append("- Paper numbers were measured by the authors with their training setup; this repo does not reproduce them.")
    if spec.family == "snn":
        lines.append("- Spiking: its energy advantage assumes hardware that skips zero spikes; on CPUs and GPUs every timestep "
                     "costs a dense pass (see `zoo bench NAME` for spike rates and synaptic operations).")
    if weights and weights.license != spec.license:
        lines.append(f"- The weights' licence ({weights.license}) differs from the code's ({spec.license}): check it before commercial use.")
    lines.append("- Latency depends on the machine, threads and library versions listed with each row.")
    return lines + [""]


def _provenance_section(spec, run: Path | None) -> list[str]:
    lines = ["## Weights: provenance and licence", ""]
    if run is not None:
        if spec.tag and spec.has_weights:
            w = spec.weight(spec.tag)
            lines.append(f"- Fine-tuned here from `{spec.name}.{w.tag}` ([{w.hf_hub_id}](https://huggingface.co/{w.hf_hub_id}), "
                         f"{w.dataset}), so its licence carries over: {w.license}.")
        else:
            lines.append(f"- Trained from scratch here (see Training), under the code's licence ({spec.license}) unless the "
                         "training data's terms say otherwise.")
    elif spec.weights:
        lines += ["| tag | Hub repo | dataset | licence |", "|---|---|---|---|"]
        lines += [f"| `{w.tag}` | [{w.hf_hub_id}](https://huggingface.co/{w.hf_hub_id}) | {w.dataset} | {w.license} |" for w in spec.weights]
    else:
        lines.append("- None published for this architecture.")
    return lines + ["", f"Code licence: {spec.license}" + (f"; the paper's official code: {spec.paper.code_url} ({spec.paper.code_license})"
                                                           if spec.paper and spec.paper.code_url else "") + ".", ""]


def _citation_section(spec) -> list[str]:
    if not spec.paper:
        return []
    return ["## Citation", "", f"{spec.paper.title}, [arXiv:{spec.paper.arxiv}]({spec.paper.url}).", "", "```bibtex",
            spec.paper.bibtex.strip(), "```", ""]


# -- writing -------------------------------------------------------------------------------------------


def write_card(source: str | os.PathLike, out: str | os.PathLike | None = None, *,
               bench_dirs: Sequence[str | os.PathLike] = ("runs/bench",), facts: dict | None = None, repo_id: str | None = None) -> Path:
    """Render ``source``'s card to ``out`` (default: ``RUN/README.md`` for a run, ``model_cards/NAME.md`` else)."""
    if out is None:
        out = Path(source) / "README.md" if Path(str(source)).is_dir() else Path("model_cards") / f"{source}.md"
    card = build_card(source, bench_dirs=bench_dirs, facts=facts, repo_id=repo_id)
    return atomic_write_text(out, str(card))


def read_facts(path: str | os.PathLike) -> dict[str, Any]:
    """The ``efficient_zoo`` facts block of a card's front matter."""
    from huggingface_hub import ModelCard

    card = ModelCard.load(Path(path))
    facts = card.data.to_dict().get(FACTS_KEY)
    if not isinstance(facts, dict):
        raise BadArgumentError(f"{path} has no '{FACTS_KEY}' block in its front matter; regenerate it with `zoo card`")
    return facts


CHECKED_FACTS = ("model", "params", "macs", "input_size", "code_license", "weights_license")


def stale_facts(path: str | os.PathLike, now: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{fact: (in the card, computed now)}`` for every checked fact that differs; empty when the card is fresh."""
    stored = read_facts(path)
    return {k: (stored.get(k), now[k]) for k in CHECKED_FACTS if stored.get(k) != now[k]}


def write_all(out_dir: str | os.PathLike = "model_cards", *, bench_dirs: Sequence[str | os.PathLike] = ("runs/bench",),
              names: Sequence[str] | None = None, progress: bool = True) -> list[Path]:
    """A card per registered model in ``out_dir``, the bench documents they cite in ``out_dir/bench``, and an
    index (``README.md``) with a Pareto plot of measured latency against reported accuracy."""
    import zoo

    out_dir = Path(out_dir)
    dirs = list(bench_dirs) + [out_dir / BENCH_SUBDIR]  # a fresh measurement first, the committed copy as fallback
    names = list(names) if names is not None else zoo.list_models()
    documents = bench_documents(dirs)
    iterator: Iterable[str] = names
    if progress:
        from rich.progress import track

        iterator = track(names, description="writing model cards")
    written, index = [], []
    for name in iterator:
        facts = card_facts(name)
        written.append(write_card(name, out_dir / f"{name}.md", bench_dirs=dirs, facts=facts))
        index.append((name, facts, speed_rows(name, documents, facts["input_size"])))
    kept = _keep_cited_rows(documents, {n for n, _, _ in index})
    for doc in kept:
        atomic_write_json(out_dir / BENCH_SUBDIR / doc.pop("file"), doc)
    if names == zoo.list_models():
        for stale in set(out_dir.glob("*.md")) - set(written) - {out_dir / "README.md"}:
            stale.unlink()  # a model that is no longer registered
    plot = _index_plot(kept, out_dir / "pareto.png")
    written.append(_write_index(out_dir / "README.md", index, plot))
    return written


def _keep_cited_rows(documents: list[dict[str, Any]], names: set[str]) -> list[dict[str, Any]]:
    kept = []
    for doc in documents:
        rows = [r for r in doc["results"] if r.get("model") in names]
        if rows:
            kept.append({"machine": doc["machine"], "results": rows, "file": doc["file"]})
    return kept


def _index_plot(documents: list[dict[str, Any]], path: Path) -> Path | None:
    from zoo.bench import plot_pareto

    if not documents:
        return None
    biggest = max(documents, key=lambda d: len(d["results"]))  # one machine per plot: latencies compare only there
    return plot_pareto(biggest, path)


def _write_index(path: Path, index: list[tuple[str, dict, list]], plot: Path | None) -> Path:
    import zoo

    machines: dict[str, str] = {}  # full description -> short key used in the table
    rows = []
    for name, facts, speeds in index:
        spec = zoo.info(name)
        timed = [r for r in speeds if r["backend"] == "torch" and r["batch"] == 1]
        latency, where, deploy = "", "not measured", ""
        best = fastest_form(speeds)
        if best and best["speedup_vs_onnxruntime_fp32"]:
            key = machines.setdefault(best["machine"], chr(ord("A") + len(machines)))
            deploy = f"{best['backend']} {best['precision']}: {best['p50_ms']:.2f} ms, {best['speedup_vs_onnxruntime_fp32']:.2f}x ORT fp32 ({key})"
            if best["eager_ms"]:  # eager from the same machine and threads as the deploy form beside it
                timed = []
                latency, where = f"{best['eager_ms']:.1f}", f"{key}, {best.get('measured') or ''}"
        if timed:
            label = machine_label(timed[0]["machine"])
            key = machines.setdefault(label, chr(ord("A") + len(machines)))
            latency, where = f"{timed[0]['p50_ms']:.1f}", f"{key}, {timed[0].get('measured', '')}"
        head = spec.headline
        reported = f"{head.metric} {head.value}{head.unit} on {head.dataset} ({head.source.split(',')[0]})" if head else ""
        size = facts["input_size"]
        rows.append(f"| [{name}]({name}.md) | {spec.task} | {'x'.join(map(str, size[1:])) if len(size) == 3 else f'{size[0]} tok'} "
                    f"| {_fmt_count(facts['params'])} | {facts['macs'] / 1e9:.3f} | {latency} | {where} | {deploy} | {reported} "
                    f"| {facts['weights_license'] or 'no weights'} |")
    lines = ["# Model cards", "",
             "One card per registered model, generated by `zoo card --all`: do not edit by hand. `tests/test_cards.py` fails "
             "when a card's params, MACs or licence no longer match the code. Params and MACs are the deploy form's at the input "
             "size shown. Latency is batch 1 with the `torch` backend, from the `zoo bench` documents in `bench/`, with the machine "
             "and date it was measured on. The fastest verified deploy form is the quickest export (runtime and precision) of "
             "`benchmarks/deploy.py` or `zoo bench --best` at batch 1, with its speed-up over onnxruntime fp32 in the same run. "
             "Accuracy is the paper's reported number; each card cites it.", ""]
    if plot is not None:
        lines += [f"![latency measured here against reported accuracy]({plot.name})", ""]
    lines += [f"Machine {key}: {label}." for label, key in machines.items()] + [""]
    lines += ["| model | task | input | params | GMACs | latency p50 (ms) | measured on | fastest verified deploy form | reported "
              "| weights licence |", "|---|---|---|---:|---:|---:|---|---|---|---|", *rows]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def stage_for_push(source: str | os.PathLike, folder: str | os.PathLike, *, bench_dirs: Sequence[str | os.PathLike] = ("runs/bench",),
                   repo_id: str | None = None) -> list[str]:
    """Copy what ``zoo push`` publishes into ``folder``: config.json, model.safetensors (and preprocessor_config.json
    where transformers' layout has one), README.md (the card),
    ONNX exports with their verification reports, and the resolved recipe. Returns the relative paths."""
    folder = Path(folder)
    run = run_dir_of(source)
    model_dir = (run / "model") if run else Path(source)
    if not (model_dir / "config.json").is_file() or not (model_dir / "model.safetensors").is_file():
        raise BadArgumentError(f"{source} is neither a `zoo train` run directory nor a `zoo.save` folder (config.json + "
                               "model.safetensors); pass one of those, or save a model first with zoo.save(model, FOLDER)")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", PREPROCESSOR_NAME):
        if (model_dir / name).is_file():  # the image processor's settings: transformers-layout folders only
            shutil.copy2(model_dir / name, folder / name)
    if run:
        for path in sorted((run / "export").glob("*.onnx")) + sorted((run / "export").glob("*.verification.json")):
            shutil.copy2(path, folder / path.name)
        if (run / "config.yaml").is_file():
            import yaml

            published = _without_local_paths(yaml.safe_load((run / "config.yaml").read_text()) or {})
            (folder / "recipe.yaml").write_text(yaml.safe_dump(published, sort_keys=False))
    write_card(run or model_dir, folder / "README.md", bench_dirs=bench_dirs, repo_id=repo_id)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
