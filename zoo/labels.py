"""Class names of the public datasets that several families' official weights were trained on.

Below the models (they name them in their specs) and the data (datasets read them), so no family imports
another for its labels."""
from __future__ import annotations

# COCO 2017's 80 detection categories in contiguous order (the category ids with the gaps removed), as the
# official YOLOv10, RT-DETR and D-FINE checkpoints index them: docs/sources.md, "COCO class names".
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)

# DocStructBench's ten document-layout classes, in DocLayout-YOLO's released weights' order (docs/sources.md,
# "DocLayout-YOLO")
DOCSTRUCTBENCH_CLASSES = ("title", "plain text", "abandon", "figure", "figure_caption", "table", "table_caption",
                          "table_footnote", "isolate_formula", "formula_caption")
