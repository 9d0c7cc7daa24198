"""Does the stronger detection augmentation pay on the shapes data? Before/after, on the usual and a harder val set.

    python benchmarks/detection_augment_evidence.py [--recipes yolov10n_shapes mobiledet_cpu_shapes]
                                                    [--epochs N] [--set KEY=VALUE ...] [--rows FILE] [--update-readme]

Each recipe trains twice with the same epochs, seed and data: as committed ("before": colour jitter, scale and
shift, flip) and with the YOLOv10 recipe's strong augmentation added ("after": mosaic 1.0 closed for the last
epochs, HSV 0.015/0.7/0.4, copy-paste 0.3). Both are evaluated on the recipe's own val split and on the same number
of images from the "hard" scene (``data.scene=hard``: 4-12 shapes of 5-25% of the side, more overlap), which
neither run trains on: the held-out test of whether the stronger pipeline generalises better. Prints the table,
writes JSON to ``--out``; ``--update-readme`` puts the table into README.md between the
detection-augment-evidence markers.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
STRONG = ["data.augment.mosaic=1.0", "data.augment.hsv=[0.015,0.7,0.4]", "data.augment.copy_paste=0.3"]


def train_and_score(recipe: str, extra: list[str], epochs: int | None, close: int, settings: list[str]) -> dict:
    import zoo
    from zoo.config import compose
    from zoo.evaluate import data_module
    from zoo.task_table import TASKS
    from zoo.train import run

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"out_dir={tmp}", "trainer.enable_progress_bar=false", *settings, *extra]
        if epochs:
            overrides.append(f"trainer.max_epochs={epochs}")
        if extra:
            overrides.append(f"data.augment.close_mosaic={close}")
        cfg = compose(recipe, overrides)
        started = time.perf_counter()
        summary = run(cfg, Path(tmp) / "run")
        wall = time.perf_counter() - started
        model = zoo.load(str(Path(tmp) / "run")).eval()
        data, _ = data_module(model.zoo_spec, [
            "data=shapes_det", "data.scene=hard", f"data.val_images={cfg.data.val_images}",
            f"data.image_size={cfg.data.image_size}", f"data.img_size={cfg.data.img_size}"], with_train=False)
        hard = TASKS["detection"].part("evaluate")(model, data.val_dataloader(), data.classes, Path(tmp) / "hard",
                                                   title=f"{recipe} on the hard scene")
    return {"val_map": summary["val_map"], "val_map50": summary["val_map50"], "hard_map": hard["map"],
            "hard_map50": hard["map50"], "epochs": summary["epochs"], "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="*", default=["yolov10n_shapes", "mobiledet_cpu_shapes"])
    parser.add_argument("--epochs", type=int, help="override the recipes' epochs (default: theirs)")
    parser.add_argument("--close", type=int, default=2, help="epochs at the end without the strong augmentation")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for both runs (a quick check: "
                        "data.train_images=64 data.val_images=16)")
    parser.add_argument("--out", default="runs/bench/detection_augment_evidence.json")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--rows", help="a file of rows already measured, one JSON object per line (what an interrupted "
                        "run printed): those runs are kept, the missing ones trained and appended to it")
    args = parser.parse_args()

    from zoo._io import atomic_write_json, fill_marked_section
    from zoo.environment import machine

    m = machine()
    rows = []
    if args.rows and Path(args.rows).exists():
        rows = [json.loads(line) for line in Path(args.rows).read_text().splitlines() if line.startswith("{")]
    done = {(r["recipe"], r["augmentation"]) for r in rows}
    for recipe in args.recipes:
        for label, extra in (("before", []), ("after", STRONG)):
            if (recipe, label) in done:
                continue
            rows.append({"recipe": recipe, "augmentation": label, "date": m["date"],
                         **train_and_score(recipe, extra, args.epochs, args.close, args.set)})
            print(json.dumps(rows[-1]), flush=True)
            if args.rows:
                with open(args.rows, "a") as f:
                    f.write(json.dumps(rows[-1]) + "\n")
    order = {(recipe, label): i for i, (recipe, label) in enumerate(
        (recipe, label) for recipe in args.recipes for label in ("before", "after"))}
    rows.sort(key=lambda r: order.get((r["recipe"], r["augmentation"]), len(order)))
    lines = [(f"Stronger augmentation on the shapes data ({m['cpu']}, {m['threads']} threads, {m['date']}; "
              "`python benchmarks/detection_augment_evidence.py`; after = mosaic, HSV and copy-paste added, same epochs "
              "and seed; hard = held-out crowded scene; each run's wall time is in the JSON):"), "",
             "| recipe | augmentation | epochs | val mAP@[.5:.95] | val mAP@.5 | hard mAP@[.5:.95] | hard mAP@.5 |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['recipe']} | {r['augmentation']} | {r['epochs']} | {r['val_map']:.3f} | {r['val_map50']:.3f} | "
              f"{r['hard_map']:.3f} | {r['hard_map50']:.3f} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    atomic_write_json(Path(args.out), {"machine": m, "rows": rows})
    if args.update_readme:
        print(f"updated {fill_marked_section(README, 'detection-augment-evidence', text)}")


if __name__ == "__main__":
    main()
