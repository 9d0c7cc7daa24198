#!/usr/bin/env bash
# GPU checks for a machine with an NVIDIA GPU (run from the repository root, e.g. on the lent accelerator):
# a CUDA latency table from `zoo bench --device cuda`, and the TensorRT export path (which builds, runs and
# compares an engine where the tensorrt package is installed, and otherwise must stop with its clear message).
# Uses the machine's own torch/timm: the repository is put on PYTHONPATH, nothing is installed.
# Results go to $OUT (default: gpu_check_out/). ONLY=detr runs the RT-DETR / D-FINE sections alone (no SNN section).
set -uo pipefail
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="$(realpath -m "${OUT:-gpu_check_out}")"
if ! python3 -c "import zoo.recipes" 2>/dev/null; then  # lay the package out as the wheel does (pyproject's package-dir)
  rm -rf /tmp/zoo_pkg && mkdir -p /tmp/zoo_pkg && cp -r zoo /tmp/zoo_pkg/ && for d in recipes conf plugins; do cp -r $d /tmp/zoo_pkg/zoo/$d; done
  export PYTHONPATH="/tmp/zoo_pkg:$PYTHONPATH"
fi
train() { (cd /tmp && timeout 200 python3 -m zoo.cli train "$@"); }  # outside the checkout, whose zoo/ has no recipes/
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, timm, onnx, onnxruntime, transformers; print('torch', torch.__version__, 'timm', timm.__version__, 'onnx', onnx.__version__, 'ort', onnxruntime.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"
python3 -c "import tensorrt; print('tensorrt', tensorrt.__version__)" 2>&1 | tee -a "$OUT/gpu.txt"

if [ "${ONLY:-all}" != detr ]; then
echo "== CUDA latency: eager, batch 1 and 32 =="
timeout 150 python3 -m zoo.cli bench mobilenetv3_small_100 mobileone_s0 efficientformer_l1 nextvit_small fastvit_mci0 \
  --device cuda --backends torch --batch 1 32 --runs 100 --warmup 20 --out "$OUT" 2>&1 | grep -v "Warning\|warn(" | tee "$OUT/bench_eager.log"
echo "== CUDA latency: torch.compile, batch 32 =="
timeout 180 python3 -m zoo.cli bench mobilenetv3_small_100 efficientformer_l1 \
  --device cuda --backends compile --batch 32 --runs 100 --warmup 20 --out "$OUT" 2>&1 | grep -v "Warning\|warn(" | tee "$OUT/bench_compile.log"
echo "== TensorRT export (fp16) =="
timeout 150 python3 -m zoo.cli export mobilenetv3_small_100 --format tensorrt --half --no-simplify --out "$OUT/mnv3.engine" 2>&1 | tail -5 | tee "$OUT/tensorrt.log"
echo "exit code of the TensorRT export: ${PIPESTATUS[0]}"
echo "== YOLOv10: CUDA latency at 640 (eager, deploy form), batch 1 and 16 =="
timeout 150 python3 -m zoo.cli bench yolov10n yolov10s yolov10m \
  --device cuda --backends torch --batch 1 16 --runs 50 --warmup 10 --out "$OUT" 2>&1 | grep -v "Warning\|warn(" | tee "$OUT/bench_yolov10.log"
echo "== YOLOv10-N TensorRT export (fp16, [1, 300, 6] detections compared with onnxruntime) =="
timeout 200 python3 -m zoo.cli export yolov10n --format tensorrt --half --no-simplify --out "$OUT/yolov10n.engine" 2>&1 | tail -5 | tee "$OUT/tensorrt_yolov10n.log"
echo "exit code of the YOLOv10-N TensorRT export: ${PIPESTATUS[0]}"
echo "== QAT int8: a 1-epoch quickstart QAT run, then its Q/DQ ONNX built as a TensorRT int8 engine =="
train recipe=quickstart plugins=[qat] trainer.max_epochs=1 trainer.enable_progress_bar=false \
  out_dir="$OUT/qat" 2>&1 | tail -3 | tee "$OUT/qat_train.log"
QAT_RUN="$(ls -d "$OUT"/qat/quickstart/*/ 2>/dev/null | head -1)"
timeout 200 python3 -m zoo.cli export "$QAT_RUN" --format tensorrt --imgsz 224 --out "$OUT/qat_int8.engine" 2>&1 | tail -6 | tee "$OUT/tensorrt_int8.log"
echo "exit code of the int8 TensorRT export: ${PIPESTATUS[0]}"
fi
echo "== RT-DETR / D-FINE: CUDA latency at 640 next to YOLOv10-N (eager), batch 1 and 16 =="
timeout 200 python3 -m zoo.cli bench yolov10n rtdetr_r18 rtdetrv2_r18 rtdetr_r50 dfine_n dfine_s dfine_m \
  --device cuda --backends torch --batch 1 16 --runs 50 --warmup 10 --out "$OUT" 2>&1 | grep -v "Warning\|warn(" | tee "$OUT/bench_detr.log"
echo "== DETR fine-tuning on CUDA (precision auto: bf16-mixed), D-FINE-N and RT-DETR-R18, 30 steps each =="
for model in dfine_n rtdetr_r18; do
  train recipe=dfine_n_shapes model=$model trainer.max_epochs=1 trainer.limit_train_batches=30 \
    trainer.limit_val_batches=5 trainer.enable_progress_bar=false out_dir="$OUT/detr_$model" 2>&1 | tail -4 | tee "$OUT/detr_train_$model.log"
  echo "exit code of the $model CUDA training: ${PIPESTATUS[0]}"
done
if [ "${ONLY:-all}" != detr ]; then
echo "== SNN: SEW-ResNet-18 (T=4) trained 20 steps on CUDA, CUDA latency with the energy view, TensorRT of the unrolled graph =="
train recipe=sew_resnet18_digits trainer.max_epochs=1 trainer.limit_train_batches=20 trainer.enable_progress_bar=false \
  out_dir="$OUT/snn" 2>&1 | tail -3 | tee "$OUT/snn_train.log"
echo "exit code of the SNN CUDA training: ${PIPESTATUS[0]}"
timeout 150 python3 -m zoo.cli bench sew_resnet18 spikformer_4_384 --device cuda --backends torch --batch 1 32 --runs 50 \
  --warmup 10 --out "$OUT" 2>&1 | grep -v "Warning\|warn(" | tee "$OUT/bench_snn.log"
timeout 200 python3 -m zoo.cli export sew_resnet18 --format tensorrt --half --no-simplify --out "$OUT/sew_resnet18.engine" 2>&1 | tail -5 | tee "$OUT/tensorrt_snn.log"
echo "exit code of the SNN TensorRT export: ${PIPESTATUS[0]}"
fi
