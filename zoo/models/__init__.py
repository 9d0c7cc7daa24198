"""Built-in model families, one file each; importing this package registers them all.

Imported by the registry on the first query (never by ``import zoo``), so each family file must keep
heavy imports (timm, transformers) inside its builders.
"""
from zoo.models import efficientformer, efficientvmamba, fastdepth, fastvit, matformer, mobileclip, mobiledet, mobileone, nas_mobile, nextvit, pp_mobileseg, proxylessnas, rtdetr, seg_heads, shiftaddvit, simplenet, snn, yolov10  # noqa: F401
