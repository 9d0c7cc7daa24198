"""Recipe YAMLs (complete, reproducible runs), shipped as package data of ``zoo.recipes``."""
