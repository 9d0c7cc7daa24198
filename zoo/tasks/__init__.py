"""LightningModules that own the loss, metrics, optimizer/scheduler and EMA for a kind of model."""

SCHEDULES = ("cosine", "poly")  # optim.schedule: the learning-rate decays zoo.tasks.base builds (checked by zoo.config)
