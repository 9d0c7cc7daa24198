"""The package version, on the lowest floor so that any module can name it without importing ``zoo``."""

__version__ = "0.1.0"
