"""LightningModules that own the loss, metrics, optimizer/scheduler and EMA for a kind of model."""
