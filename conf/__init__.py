"""Hydra config groups that recipes compose, shipped as package data of ``zoo.conf``."""
