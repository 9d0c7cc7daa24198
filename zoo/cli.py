"""The ``zoo`` command line: one entry point, one subcommand per job.

Startup stays light (argparse and the registry only); each subcommand imports what it needs when it
runs. Bad input exits with status 2 and one line on stderr naming the problem and the fix.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence

EXAMPLES = {
    "list": "examples:\n  zoo list\n  zoo list 'mobile*' --pretrained\n  zoo list --task classification",
    "info": "examples:\n  zoo info efficientformer_l1\n  zoo info nextvit_small.bd_in1k_384 --json",
    "train": (
        "Any Hydra override works: KEY=VALUE, +NEW_KEY=VALUE, GROUP=OPTION (model=, data=, optim=, ...).\n"
        "Hydra flags: --cfg job (print the resolved config and exit), -m (multirun sweep).\n"
        "Trainer flags pass to Lightning untouched (trainer.strategy=ddp trainer.devices=8 trainer.num_nodes=2).\n\n"
        "examples:\n"
        "  zoo train recipe=quickstart\n"
        "  zoo train recipe=quickstart trainer.max_epochs=3 optim.lr=0.01\n"
        "  zoo train recipe=quickstart model.name=mobileone_s0 data=shapes\n"
        "  zoo train recipe=quickstart data=folder data.root=/data/flowers model.pretrained=true\n"
        "  zoo train recipe=quickstart --cfg job\n"
        "  zoo train -m recipe=quickstart optim.lr=0.002,0.005\n"
        "  zoo train recipe=quickstart resume=last\n"
        "  zoo train recipe=quickstart plugins=[distill] plugins.distill.teacher=runs/quickstart/<time>\n"
        "  zoo train recipe=yolov10n_shapes                     # a detector, from scratch on CPU\n"
        "  zoo train recipe=yolov10n_finetune data.root=/data/my-yolo-set    # your data, from the COCO weights\n\n"
        "Writes runs/<recipe>/<time>/ (config, checkpoints, logs, model/, eval/). Recipes: zoo/recipes/*.yaml."
    ),
    "eval": (
        "Evaluates on the data config's validation split with the model's own preprocessing.\n\n"
        "examples:\n"
        "  zoo eval runs/quickstart/2026-01-01_12-00-00 data=digits\n"
        "  zoo eval my-model data=folder data.root=/data/flowers --out flowers-eval\n"
        "  zoo eval hf-hub:org/name data=hf data.path=beans\n"
        "  zoo eval runs/yolov10n_shapes/2026-01-01_12-00-00 data=shapes_det   # detectors: COCO mAP\n"
        "  zoo eval mobileclip2_s0.dfndr2b data=digits --labels zero,one,two,three,four,five,six,seven,eight,nine\n\n"
        "Image-text models (mobileclip*) classify zero-shot into the data's classes, prompted by their names or --labels.\n"
        "Classifiers: metrics.json (top-1, top-5, loss, per-class accuracy, confusion matrix) and confusion_matrix.png.\n"
        "Detectors: metrics.json (mAP@[.5:.95], mAP@.5, mAP@.75, per-class AP), per_class_ap.png, predictions.png.\n"
        "Written to --out (default: RUN/eval-<data> for a run directory, else runs/eval/<model>/<time>)."
    ),
    "data": (
        "Draws the recipe's first training samples after augmentation (mosaic, mixup, affine, colour), with their\n"
        "boxes and class names, into a PNG: look at what the model will see before a long run.\n\n"
        "examples:\n"
        "  zoo data show recipe=yolov10n_shapes\n"
        "  zoo data show recipe=yolov10n_shapes data.augment.mosaic=1.0 data.augment.mixup=0.5 --out mosaic.png\n"
        "  zoo data show recipe=yolov10n_coco data.root=/data/coco --count 8"
    ),
    "export": (
        "Exports the deploy form (re-parameterisable branches folded) and verifies it against PyTorch on a random\n"
        "and a real photo; fails, writing nothing, beyond tolerance (fp32: 1e-4 + 1e-5 x max|output|).\n\n"
        "examples:\n"
        "  zoo export mobilenetv3_small_100 --format onnx\n"
        "  zoo export runs/quickstart/2026-01-01_12-00-00 --format onnx --dynamic\n"
        "  zoo export efficientformer_l1 --format coreml --half --image-input\n"
        "  zoo export mobileone_s0 --format openvino --precision bf16   # IR folder; bf16 is the CPU plugin's hint\n"
        "  zoo export mobilenetv3_large_100 --format executorch          # .pte for the XNNPACK delegate\n"
        "  zoo export mobilenetv3_large_100 --format litert              # .tflite for the LiteRT interpreter\n"
        "  zoo export nextvit_small --format tensorrt --half   # needs a CUDA GPU and tensorrt\n"
        "  zoo export runs/matvit_ti_digits/<time> --budget-ms 2   # MatFormer: the largest Mix'n'Match model within 2 ms\n"
        "  zoo export runs/ofa_mbv3_w10_digits/<time> --budget-ms 5   # OFA: the largest sub-network within 5 ms\n"
        "  zoo export runs/sew_resnet18_digits/<time> --per-step   # SNN: one timestep, states in and out (early exit)\n"
        "  zoo export mobileclip2_s0.dfndr2b --labels \"cat,dog\"   # zero-shot classifier: image in, class scores out"
    ),
    "quantize": (
        "Post-training int8 without a training run: calibrates on --calib training images of the data config (evaluation\n"
        "transform), quantizes with the runtime's own tool (onnxruntime quantize_static, NNCF, ExecuTorch's XNNPACKQuantizer,\n"
        "litert-torch's PT2EQuantizer), keeps in float the op types whose int8 form is slower on this machine (onnx, openvino),\n"
        "and reports accuracy on the validation split and batch-1 latency against the fp32 export of the same format.\n\n"
        "examples:\n"
        "  zoo quantize runs/quickstart/2026-01-01_12-00-00 --data digits --format openvino\n"
        "  zoo quantize runs/yolov10n_shapes/2026-01-01_12-00-00 --data shapes_det --format onnx --calib 200\n"
        "  zoo quantize my-model --data folder data.root=/data/flowers --format executorch --out flowers.int8.pte\n\n"
        "Writes the int8 export (default RUN/export/model.int8.EXT or exports/NAME.int8.EXT), its .verification.json and\n"
        "EXPORT.quantize.json (accuracy, latency, the op types left in float)."
    ),
    "bench": (
        "Measures params, MACs (torch.utils.flop_counter), latency p50/p90 over --runs after --warmup, throughput,\n"
        "memory, and the fraction of this machine's matmul peak; writes JSON (keyed by machine) and a Pareto PNG.\n\n"
        "examples:\n"
        "  zoo bench mobilenetv3_small_100 mobileone_s0\n"
        "  zoo bench --all --backends torch,compile,onnxruntime\n"
        "  zoo bench efficientformer_l1 --batch 1 8 --threads 1 --imgsz 224\n"
        "  zoo bench sew_resnet18 --imgsz 64   # spiking models add spike rates, synaptic ops and energy\n"
        "  zoo bench mobileone_s0 --backends onnxruntime,openvino,executorch,litert --precision fp32,bf16,int8 --best"
    ),
    "predict": (
        "Classifiers: each image through the model's evaluation transform; OUT/<stem>.png shows its --top-k classes'\n"
        "probabilities. Image-text models (mobileclip*) classify into --labels, zero-shot.\n"
        "Detectors: letterboxes each image to the model's input size (or --imgsz), keeps detections with score >= --conf,\n"
        "maps them back to the original pixels and writes OUT/<stem>.png (boxes drawn) and OUT/predictions.json.\n"
        "Segmentation models: the class map in the original pixels, as OUT/<stem>.png (classes over the image) and\n"
        "OUT/<stem>_classes.png (one class index per pixel), and each class's share of the pixels in predictions.json.\n"
        "A registered name with a weights tag (yolov10n.coco) downloads its weights; a bare name is untrained.\n\n"
        "examples:\n"
        "  zoo predict yolov10n.coco bus.jpg --out preds/\n"
        "  zoo predict runs/yolov10n_shapes/2026-01-01_12-00-00 photos/*.jpg --out preds/ --conf 0.4\n"
        "  zoo predict hf-hub:org/name street.png --out preds/ --imgsz 320\n"
        "  zoo predict runs/lraspp_mobilenetv3_large_shapes/2026-01-01_12-00-00 scene.png --out masks/\n"
        "  zoo predict mobileclip2_s0.dfndr2b photo.jpg --labels \"forklift,pallet,person\" --out preds/\n"
        "  zoo predict doclayout_yolo.docstructbench page.png --out layout/ --allow-pickle  # weights published as a pickle"
    ),
    "embed": (
        "Image-text models (mobileclip*) embed images with the image tower and texts with the text tower, into one\n"
        "space: rows compare by dot product. Other classifiers embed images as pooled features. A folder is read in name\n"
        "order, a text file one text per line; .safetensors keeps the item names in its metadata, .npy gets <stem>.json.\n\n"
        "examples:\n"
        "  zoo embed mobileclip2_s0.dfndr2b photos/ --out photos.safetensors\n"
        "  zoo embed mobileclip2_s0.dfndr2b queries.txt --out queries.npy\n"
        "  zoo embed runs/quickstart/2026-01-01_12-00-00 photos/ --out features.npy"
    ),
    "card": (
        "Renders a Hugging Face model card (YAML front matter with licence, tags, datasets, pipeline_tag and, for a run,\n"
        "model-index results; then architecture, params/MACs, speed from `zoo bench` JSON, recipe, compression, exports,\n"
        "limitations, provenance and citation). Params and MACs are computed now; latency rows keep their date and machine.\n\n"
        "examples:\n"
        "  zoo card yolov10n                                 # -> model_cards/yolov10n.md\n"
        "  zoo card runs/quickstart/2026-01-01_12-00-00      # -> RUN/README.md\n"
        "  zoo card mobileone_s0 --out card.md --bench-dir runs/bench\n"
        "  zoo card --all                                    # every registered model + model_cards/README.md index"
    ),
    "push": (
        "Publishes config.json, model.safetensors, README.md (the card), ONNX exports with their verification reports\n"
        "and the resolved recipe in one commit (huggingface_hub create_repo + upload_folder). The token comes from\n"
        "HF_TOKEN or `hf auth login`, and is never printed. Load it back with zoo.load(\"hf-hub:ORG/NAME\").\n\n"
        "examples:\n"
        "  zoo push runs/quickstart/2026-01-01_12-00-00 --repo-id my-org/digits-mnv3\n"
        "  zoo push my-saved-folder --repo-id my-org/parts-detector --private --revision v1"
    ),
    "quickstart": (
        "Trains the `quickstart` recipe (MobileNetV3-Small on the embedded digits data), evaluates it, saves it,\n"
        "checks that it loads back, exports it to verified ONNX and writes its model card. Needs no download; a few\n"
        "minutes on 2 CPU cores.\n\n"
        "examples:\n  zoo quickstart\n  zoo quickstart --out-dir /tmp/zoo-runs --epochs 3"
    ),
}

# Subcommands whose arguments belong to another parser (Hydra) once --help is handled.
PASSTHROUGH = {"train": "zoo.train", "eval": "zoo.evaluate", "quickstart": "zoo.quickstart", "quantize": "zoo.ptq",
               "data": "zoo.show"}


def _parser() -> argparse.ArgumentParser:
    from zoo import __version__

    parser = argparse.ArgumentParser(
        prog="zoo",
        description="efficient-zoo: efficient architectures by name, with weights, recipes and exports.",
        epilog="Run `zoo COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"efficient-zoo {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure (also ZOO_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help, description=help, epilog=EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter
        )

    p = command("list", "List registered models as a table (paper-reported params, MACs and accuracy).")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern on model names (default: all)")
    p.add_argument("--task", help="only models for this task (classification, detection, language-modeling)")
    p.add_argument("--pretrained", action="store_true", help="only models with weights, one row per arch.tag")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_cmd_list)

    p = command("info", "Describe a model: spec, preprocessing, weight tags and licences, paper, reported numbers.")
    p.add_argument("name", help="a registered model, optionally arch.tag")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_cmd_info)

    p = command("train", "Train a recipe (Lightning + Hydra) into runs/<recipe>/<time>/.")
    p.add_argument("overrides", nargs="*", metavar="recipe=NAME [KEY=VALUE ...]", help="the recipe and Hydra overrides")

    p = command("eval", "Evaluate a model or run: top-1/top-5, loss, per-class accuracy, confusion matrix.")
    p.add_argument("source", help="a run directory, a zoo.save folder, hf-hub:org/name, or a registered name")
    p.add_argument("overrides", nargs="*", metavar="data=NAME [data.KEY=VALUE ...]", help="the data config and overrides")
    p.add_argument("--out", help="where to write metrics.json and confusion_matrix.png")
    p.add_argument("--labels", help="image-text models: the names to prompt with, one per data class in order (default: the data's)")

    p = command("export", "Export a model or run to ONNX, OpenVINO, ExecuTorch, LiteRT, CoreML or TensorRT, verified in its runtime.")
    p.add_argument("source", help="a registered name, a run directory, a zoo.save folder or hf-hub:org/name")
    p.add_argument("--format", default="onnx", help="onnx (default), openvino, executorch, litert, coreml or tensorrt")
    p.add_argument("--precision", help="fp32 (default); fp16 (openvino, coreml, tensorrt); bf16 (openvino's inference hint); "
                   "int8 comes from `zoo quantize` or a QAT run")
    p.add_argument("--imgsz", type=int, help="square input size (default: the model's)")
    p.add_argument("--batch", type=int, default=1, help="batch size of the input (default 1)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch axis")
    p.add_argument("--half", action="store_true", help="fp16, the same as --precision fp16")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--no-simplify", dest="simplify", action="store_false", help="skip onnxslim")
    p.add_argument("--image-input", action="store_true", help="coreml: take RGB images and normalise inside the model")
    p.add_argument("--labels", help="image-text models: comma-separated class names; exports the zero-shot classifier (class scores out)")
    p.add_argument("--tower", choices=("image", "text"), help="image-text models: export one tower: images -> image "
                   "embeddings, or token ids (the model's fixed context) -> text embeddings")
    p.add_argument("--out", help="output path (default: RUN/export/model.EXT or exports/NAME.EXT)")
    p.add_argument("--budget-ms", type=float, help="MatFormer models and OFA supernets: measure the Mix'n'Match "
                   "settings or sub-networks here (batch 1) and export the largest one within this latency (a PNG of the search is written next to it)")
    p.add_argument("--per-step", action="store_true", help="spiking models: one timestep with every layer's state as an "
                   "input and an output (for runtimes that stop early), verified over T chained steps; ONNX only")
    _allow_pickle_option(p)
    p.set_defaults(run=_cmd_export)

    p = command("data", "Draw a recipe's training samples as augmented, with their boxes (zoo data show).")
    p.add_argument("overrides", nargs="*", metavar="show recipe=NAME [KEY=VALUE ...]", help="show, the recipe and overrides")
    p.add_argument("--out", help="the PNG to write (default: <recipe>_data.png)")
    p.add_argument("--count", type=int, default=16, help="samples to draw (default 16)")

    p = command("quantize", "Post-training int8 for a runtime, with accuracy and latency against float.")
    p.add_argument("source", help="a run directory, a zoo.save folder, hf-hub:org/name or a registered name (arch.tag)")
    p.add_argument("overrides", nargs="*", metavar="data.KEY=VALUE", help="data config overrides")
    p.add_argument("--data", required=True, help="the data config for calibration and accuracy: digits, shapes, shapes_det, folder, coco, ...")
    p.add_argument("--format", default="openvino", help="onnx, openvino (default), executorch or litert")
    p.add_argument("--calib", type=int, default=300, help="calibration images (default 300)")
    p.add_argument("--threads", type=int, help="threads for timing (default: torch's)")
    p.add_argument("--no-mixed", dest="mixed", action="store_false", help="int8 everywhere: skip the search for op types to keep in float")
    p.add_argument("--out", help="output path of the int8 export")

    p = command("bench", "Benchmark models: params, MACs, latency, throughput, memory, share of peak.")
    p.add_argument("models", nargs="*", help="registered names, run directories or zoo.save folders (or --all)")
    p.add_argument("--all", action="store_true", help="every registered classification model")
    p.add_argument("--backends", default="torch,onnxruntime",
                   help="comma list of torch, compile, onnxruntime, openvino, executorch, litert (default torch,onnxruntime)")
    p.add_argument("--precision", default="fp32", help="comma list of fp32, fp16, bf16, int8: each backend runs those it "
                   "carries (int8 here is calibrated on random inputs: speed only; `zoo quantize` measures accuracy)")
    p.add_argument("--best", action="store_true", help="also show, per model, the fastest verified (backend, precision) and its "
                   "speed-up over onnxruntime fp32 (which is then always measured)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    p.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes (default 1)")
    p.add_argument("--imgsz", type=int, help="square input size (default: each model's)")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    p.add_argument("--runs", type=int, default=50, help="timed runs (>= 50)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", default="runs/bench", help="folder for <machine>.json and .png")
    p.set_defaults(run=_cmd_bench)

    p = command("predict", "Classify, detect objects or segment images: annotated PNGs, class maps and predictions.json.")
    p.add_argument("source", metavar="MODEL", help="a registered name (arch.tag for weights), a run directory, a zoo.save folder or hf-hub:org/name")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, GIF, WebP)")
    p.add_argument("--out", required=True, help="folder for <stem>.png and predictions.json")
    p.add_argument("--conf", type=float, default=0.25, help="keep detections with score >= CONF (default 0.25)")
    p.add_argument("--labels", help="comma-separated class names: an image-text model classifies into them (zero-shot)")
    p.add_argument("--top-k", type=int, default=5, help="classifiers: the most probable classes to list (default 5)")
    p.add_argument("--imgsz", type=int, help="square input size (default: the model's)")
    p.add_argument("--batch", type=int, default=8, help="images per forward pass (default 8)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    _allow_pickle_option(p)
    p.set_defaults(run=_cmd_predict)

    p = command("embed", "Embed a folder of images or a text file: L2-normalised vectors in one .safetensors or .npy file.")
    p.add_argument("source", metavar="MODEL", help="a registered name (arch.tag for weights), a run directory, a zoo.save folder or hf-hub:org/name")
    p.add_argument("inputs", metavar="IMAGES_OR_TEXT", help="a folder of images, or a text file with one text per line")
    p.add_argument("--out", required=True, help="the .safetensors or .npy file to write")
    p.add_argument("--batch", type=int, default=32, help="items per forward pass (default 32)")
    p.set_defaults(run=_cmd_embed)

    p = command("card", "Write a model card (Hugging Face format) for a registered model or a run.")
    p.add_argument("source", nargs="?", metavar="NAME_OR_RUN", help="a registered name (arch or arch.tag), a run directory or a zoo.save folder")
    p.add_argument("--all", action="store_true", help="a card for every registered model, plus the index, in --out (default model_cards)")
    p.add_argument("--out", help="output file (folder with --all); default: model_cards/NAME.md, or RUN/README.md for a run")
    p.add_argument("--bench-dir", action="append", help="folder of `zoo bench` JSON to take latency from (repeatable; default runs/bench)")
    p.set_defaults(run=_cmd_card)

    p = command("push", "Publish a run or a saved model to the Hugging Face Hub, with its card.")
    p.add_argument("source", metavar="RUN_OR_FOLDER", help="a `zoo train` run directory or a `zoo.save` folder")
    p.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", help="branch to commit to (created from main if missing; default main)")
    p.add_argument("--message", help="commit message")
    p.add_argument("--bench-dir", action="append", help="folder of `zoo bench` JSON for the card (default runs/bench)")
    p.set_defaults(run=_cmd_push)

    p = command("quickstart", "The main job in minutes: train, evaluate, save and reload a model on embedded data.")
    p.add_argument("--out-dir", default="runs", help="where runs go (default: runs)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Expected failures (the zoo's own errors, a file that cannot be read or written) print one
    line and exit 2; anything else is a bug, printed as one line and exit 1. ``--debug`` (or ``ZOO_DEBUG=1``) lets
    the traceback through."""
    import importlib
    import logging
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # libraries' deprecation notes at import
    debug = "--debug" in argv or os.environ.get("ZOO_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if argv and argv[0] in PASSTHROUGH and not {"-h", "--help"} & set(argv[1:]):
        return _guarded(argv[0], lambda: importlib.import_module(PASSTHROUGH[argv[0]]).main(argv[1:]), debug)
    args = _parser().parse_args(argv)
    return _guarded(args.command, lambda: args.run(args), debug)


def _guarded(command: str, job, debug: bool) -> int:
    from zoo.errors import ZooError, one_line

    try:
        return job() or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ZooError, OSError) as e:
        if debug:
            raise
        print(f"zoo {command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a bug: one line, and how to see the traceback
        if debug:
            raise
        print(f"zoo {command}: internal error: {type(e).__name__}: {one_line(e)} (rerun with --debug for the traceback, "
              "and please report it)", file=sys.stderr)
        return 1


def _allow_pickle_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-pickle", action="store_true", help="read official weights published only as pickles "
                   "(.pt/.pth/.ckpt): tensors are taken out without running the file's code (docs/security.md)")


@contextlib.contextmanager
def _pickle_hint(args: argparse.Namespace):
    """Name the command line's switch where the library's error names the keyword."""
    from zoo.errors import UnsafeWeightsError

    try:
        yield
    except UnsafeWeightsError as e:
        if args.allow_pickle:
            raise
        raise UnsafeWeightsError(f"{e} On the command line: --allow-pickle.") from None


def _fmt_reported(r) -> str:
    return "" if r is None else f"{r.value}{r.unit}"


def _cmd_list(args: argparse.Namespace) -> int:
    from zoo.registry import get_spec, list_models

    names = list_models(args.pattern, task=args.task, pretrained=args.pretrained)
    rows = []
    for name in names:
        spec = get_spec(name)
        weights = spec.weight(spec.tag) if spec.tag else (spec.weights[0] if spec.weights else None)
        headline = spec.headline
        rows.append(
            {
                "name": name,
                "task": spec.task,
                "params": _fmt_reported(spec.reported_value("params")),
                "macs": _fmt_reported(spec.reported_value("macs"))
                or (f"{_fmt_reported(spec.reported_value('flops'))} FLOPs" if spec.reported_value("flops") else ""),
                "input": f"{spec.input_size[0]} tokens" if spec.takes_tokens else "x".join(str(s) for s in spec.input_size[1:]),
                "reported": f"{headline.metric} {_fmt_reported(headline)}" if headline else "",
                "weights_license": (weights.license if weights else "no weights"),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no models match {args.pattern!r}" + (f" for task {args.task}" if args.task else ""), file=sys.stderr)
        return 1
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{len(rows)} model{'s' if len(rows) != 1 else ''}",
        caption="params, MACs and accuracy are paper-reported (see `zoo info NAME` for the source)",
    )
    for header, key, justify in (
        ("name", "name", "left"),
        ("task", "task", "left"),
        ("params", "params", "right"),
        ("MACs", "macs", "right"),
        ("input", "input", "right"),
        ("reported", "reported", "left"),
        ("weights licence", "weights_license", "left"),
    ):
        table.add_column(header, justify=justify, no_wrap=key == "name")
    for row in rows:
        table.add_row(row["name"], row["task"], row["params"], row["macs"], row["input"], row["reported"], row["weights_license"])
    Console(width=max(120, Console().width)).print(table)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from zoo.registry import get_spec

    spec = get_spec(args.name)
    data = spec.to_dict()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    from rich.console import Console

    console = Console(highlight=False)
    out = console.print
    out(f"[bold]{spec.name}[/bold]" + (f".{spec.tag}" if spec.tag else "") + f"  ({spec.family}, {spec.task})")
    if spec.description:
        out(spec.description)
    pre = spec.preprocessing()
    smallest = f" (at least {spec.min_input_size}x{spec.min_input_size})" if spec.min_input_size else ""
    if spec.takes_tokens:
        out(f"input       {spec.input_size[0]} token ids (the context length{', fixed' if spec.fixed_input_size else ''})")
        out(f"vocabulary  {spec.num_classes}")
    else:
        out(f"input       {pre['input_size']}{' (fixed)' if spec.fixed_input_size else smallest}, {pre['interpolation']}, crop_pct {pre['crop_pct']}")
        out(f"normalise   mean {pre['mean']}  std {pre['std']}")
        out(f"classes     {spec.num_classes}")
    out(f"code        licence {spec.license}; built by {data['builder']}")
    if spec.weights:
        out("weights     (tag: Hub repo, licence, dataset)")
        for w in spec.weights:
            mark = "*" if w.tag == (spec.tag or spec.default_tag) else " "
            out(f"  {mark} {w.tag}: {w.hf_hub_id}, {w.license}, {w.dataset or '?'}" + (f", input {w.input_size[1]}" if w.input_size else ""))
    else:
        out("weights     none published")
    if spec.paper:
        out(f"paper       {spec.paper.title}  {spec.paper.url}")
        if spec.paper.code_url:
            out(f"            official code: {spec.paper.code_url}" + (f" ({spec.paper.code_license})" if spec.paper.code_license else ""))
    if spec.reported:
        out("reported    (paper numbers, not measured here)")
        for r in spec.reported:
            extra = ", ".join(x for x in (r.dataset, f"{r.resolution}px" if r.resolution else "", r.note) if x)
            out(f"  {r.metric:<14} {_fmt_reported(r):>9}  {r.source}" + (f" ({extra})" if extra else ""))
    if spec.paper:
        out("citation")
        out(spec.paper.bibtex.strip(), markup=False)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    with _pickle_hint(args):
        return _export(args)


def _export(args: argparse.Namespace) -> int:
    from zoo.export import default_path, export

    source, out, searched = args.source, args.out, None
    if args.per_step:
        import zoo
        from zoo.errors import BadArgumentError
        from zoo.snn import export_step, is_spiking

        model = zoo.load(args.source, allow_pickle=args.allow_pickle)
        if not is_spiking(model) or args.format != "onnx":
            raise BadArgumentError(f"--per-step exports one timestep of a spiking model to ONNX; {model.zoo_spec.name} "
                                   f"is {'not spiking' if not is_spiking(model) else 'spiking, but the format is ' + args.format}")
        default = default_path(model.zoo_spec.name, "onnx", args.source)
        path = out or default.with_name(default.stem + ".step.onnx")
        result = export_step(model, path, imgsz=args.imgsz, batch=args.batch)
        print(f"per-step ONNX: {result['states']} states, {result['steps']} chained steps verified in onnxruntime "
              f"(max |diff| {result['max_abs_diff']:.2g})")
        print(f"wrote {result['path']}")
        return 0
    if args.budget_ms is not None:
        import zoo
        from zoo.contracts import Elastic, Supernet
        from zoo.errors import BadArgumentError

        model = zoo.load(args.source, allow_pickle=args.allow_pickle)
        if isinstance(model, Elastic):
            elastic, what, shown = zoo.matformer, "Mix'n'Match settings", lambda setting: setting
        elif isinstance(model, Supernet):
            elastic, what, shown = zoo.ofa, "sub-networks", lambda setting: f"depths {setting['d']}"
        else:
            raise BadArgumentError(f"--budget-ms picks a MatFormer granularity or an OFA sub-network; "
                                   f"{model.zoo_spec.name} is neither")
        searched = elastic.search(model, budget=args.budget_ms, metric="latency_ms")
        best = searched["best"]
        print(f"chose {shown(best['setting'])} ({best['params']:,} params, {best['latency_ms']:.2f} ms here) "
              f"among {len(searched['results'])} {what}")
        out = out or default_path(model.zoo_spec.name, args.format, args.source)
        source = elastic.extract(model, best["setting"])
    if args.labels is not None or args.tower:  # an image-text model as a zero-shot classifier of these names, or one tower
        import zoo

        source = zoo.load(args.source, allow_pickle=args.allow_pickle, **({"labels": _labels(args.labels)} if args.labels is not None else {}),
                          **({"tower": args.tower} if args.tower else {}))
        default = default_path(source.zoo_spec.name, args.format, args.source)
        out = out or (default.with_name(f"{default.stem}_{args.tower}{default.suffix}") if args.tower else default)
    result = export(source, args.format, imgsz=args.imgsz, batch=args.batch, dynamic=args.dynamic, half=args.half,
                    precision=args.precision, opset=args.opset, simplify=args.simplify, out=out, image_input=args.image_input,
                    allow_pickle=args.allow_pickle)
    print(result.summary())
    print(f"wrote {result.path}")
    if searched is not None:
        print(f"wrote {elastic.plot_search(searched, result.path.with_suffix('.search.png'))}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from zoo.bench import bench, format_best, format_energy_table, format_table
    from zoo.errors import BadArgumentError
    from zoo.registry import get_spec, list_models

    names = list_models(task="classification") if args.all else args.models
    if not names:
        raise BadArgumentError("name the models to benchmark, or pass --all")
    from pathlib import Path

    # A run directory or zoo.save folder is keyed by its absolute path (model cards look it up that way).
    names = [str(Path(n).resolve()) if Path(n).is_dir() else n for n in names]
    for name in names:
        if not Path(name).is_dir():
            get_spec(name)  # unknown names fail before any work
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.best and "onnxruntime" not in backends:
        backends.append("onnxruntime")
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if args.best and "fp32" not in precisions:
        precisions.insert(0, "fp32")
    document = bench(names, backends=backends, batch_sizes=args.batch, imgsz=args.imgsz, threads=args.threads, runs=args.runs,
                     warmup=args.warmup, device=args.device, out_dir=args.out, precisions=precisions, rounds=args.rounds)
    console = Console(width=max(140, Console().width))
    console.print(format_table(document, names))
    if args.best:
        console.print(format_best(document, names))
    energy = format_energy_table(document, names)
    if energy is not None:
        console.print(energy)
    print(f"wrote {document['path']} and {document['plot']}" + (f" and {document['spike_plot']}" if "spike_plot" in document else ""))
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    from zoo.card import write_all, write_card
    from zoo.errors import BadArgumentError

    dirs = tuple(args.bench_dir or ("runs/bench",))
    if args.all == bool(args.source):
        raise BadArgumentError("give one NAME_OR_RUN, or --all for every registered model (not both)")
    if args.all:
        written = write_all(args.out or "model_cards", bench_dirs=dirs, progress=sys.stderr.isatty())
        print(f"wrote {len(written) - 1} model cards and the index {written[-1]}")
        return 0
    _check_source(args.source)
    print(f"wrote {write_card(args.source, args.out, bench_dirs=dirs)}")
    return 0


def _check_source(source: str) -> None:
    from pathlib import Path

    from zoo.errors import SourceError

    if Path(source).exists() and not Path(source).is_dir():
        raise SourceError(f"{source} is a file; give a run directory, a zoo.save folder or a registered model name")


def _cmd_push(args: argparse.Namespace) -> int:
    from pathlib import Path

    from zoo.errors import SourceError
    from zoo.publish import push

    if not Path(args.source).is_dir():
        raise SourceError(f"{args.source} is not a folder; give a `zoo train` run directory or a `zoo.save` folder")
    result = push(args.source, args.repo_id, private=args.private, revision=args.revision, commit_message=args.message,
                  bench_dirs=tuple(args.bench_dir or ("runs/bench",)))
    print(f"pushed {len(result['files'])} files to {result['url']} (revision {result['revision']}, commit {result['commit'][:12]}):")
    for name in result["files"]:
        print(f"  {name}")
    print(f"load it with: zoo.load(\"hf-hub:{result['repo_id']}" + (f"@{result['revision']}" if result["revision"] != "main" else "") + "\")")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from zoo.embed import embed

    result = embed(args.source, args.inputs, args.out, batch_size=args.batch)
    print(f"wrote {result['count']} {result['kind']} embeddings ({result['dim']}-d, L2-normalised) to {result['out']}")
    return 0


def _labels(text: str | None) -> list[str] | None:
    """``--labels "cat,dog"`` as a list of names."""
    if text is None:
        return None
    from zoo.errors import BadArgumentError

    labels = [name.strip() for name in text.split(",")]
    if not all(labels):
        raise BadArgumentError(f"--labels needs class names separated by commas, not {text!r}")
    return labels


def _cmd_predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from zoo.predict import PREDICTIONS_NAME, predict
    from zoo.registry import list_models

    labels = _labels(args.labels)
    with _pickle_hint(args):
        results = predict(args.source, args.images, args.out, conf=args.conf, imgsz=args.imgsz, batch_size=args.batch,
                          device=args.device, labels=labels, top_k=args.top_k, allow_pickle=args.allow_pickle)
    if args.source in list_models() and not Path(args.source).exists():
        print(f"note: {args.source} names no weights tag, so its weights are untrained; see `zoo info {args.source}` for tags",
              file=sys.stderr)
    for r in results:
        if "top" in r:  # a classifier's
            print(f"{r['file']}: " + ", ".join(f"{t['label']} {t['probability']:.1%}" for t in r["top"]))
            continue
        if "pixels" in r:  # a segmentation model's
            shares = ", ".join(f"{k} {v:.0%}" for k, v in sorted(r["pixels"].items(), key=lambda kv: -kv[1]))
            print(f"{r['file']} ({r['width']}x{r['height']}): {shares}; class map {r['classes']}")
            continue
        if "depth_m" in r:  # a depth model's
            d = r["depth_m"]
            print(f"{r['file']} ({r['width']}x{r['height']}): depth {d['min']:.2f}-{d['max']:.2f} m (median {d['median']:.2f}); "
                  f"raw metres {r['depth']}")
            continue
        n = len(r["detections"])
        counts: dict[str, int] = {}
        for d in r["detections"]:
            counts[d["label"]] = counts.get(d["label"], 0) + 1
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        print(f"{r['file']} ({r['width']}x{r['height']}): {n} detection{'s' if n != 1 else ''}" + (f" ({detail})" if detail else ""))
    print(f"wrote {len(results)} image{'s' if len(results) != 1 else ''} and {PREDICTIONS_NAME} to {Path(args.out)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
