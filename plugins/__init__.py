"""Built-in training plugins, shipped as ``zoo.plugins`` (the top-level ``plugins/`` folder of the repo).

``zoo.plugins.base`` holds the API (:class:`~zoo.plugins.base.Plugin`, discovery through the
``zoo.plugins`` entry-point group, :func:`~zoo.plugins.base.build`); each built-in is one module:
``distill`` (knowledge distillation), ``prune`` (structural pruning). Nothing heavy is imported here.
"""
