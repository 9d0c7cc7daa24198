"""Built-in training plugins (distillation, QAT, pruning), shipped as ``zoo.plugins``.

The plugin API and the built-ins arrive with the compression issue; this package exists now so the
wheel layout (top-level ``plugins/`` mapped under the ``zoo`` namespace) is fixed and tested from day one.
"""
