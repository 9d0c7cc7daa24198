"""Datasets and LightningDataModules (imported on demand; ``import zoo`` does not load them)."""
