"""One exception hierarchy for the zoo.

Every message names the bad value, the valid choices (closest matches for names) and the fix, so the
CLI can print ``str(error)`` as its one line.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """Base class of every error the zoo raises on purpose."""


class UnknownModelError(ZooError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownTagError(ZooError, KeyError):
    """A weights tag the architecture does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownTaskError(ZooError, ValueError):
    """A task name that is not one of the registry's tasks."""


class NoPretrainedWeightsError(ZooError):
    """``pretrained=True`` for an architecture without published weights."""


class RegistryError(ZooError):
    """A malformed or conflicting registration."""


class BadArgumentError(ZooError, ValueError):
    """An argument with a value the function cannot use."""


class SourceError(ZooError, ValueError):
    """A model source string or path that cannot be understood (e.g. a malformed ``hf-hub:`` id)."""


class WeightsError(ZooError):
    """Weights that cannot be read or do not fit the model."""


class CorruptWeightsError(WeightsError):
    """A weights file that is truncated or does not match its checksum."""


class UnsafeWeightsError(WeightsError):
    """A pickle-based weights file given without the opt-in."""


class DataError(ZooError):
    """A dataset that is missing, empty, unreadable or does not fit the model."""


class ConfigError(ZooError):
    """A recipe or override that does not exist or does not fit the config."""


class TrainingDivergedError(ZooError):
    """A training run whose loss stopped being finite."""


class HubError(ZooError):
    """A download from the Hugging Face Hub (or ``HF_ENDPOINT``) failed."""


def one_line(error: BaseException) -> str:
    """An error as the CLI's one line: an OSError names its path and reason; other messages lose their newlines."""
    if isinstance(error, OSError) and not isinstance(error, ZooError) and error.strerror:
        target = f" {error.filename}" if error.filename else ""
        return f"cannot use{target}: {error.strerror}" + (" (check the path and its permissions)" if target else "")
    text = str(error)
    if "Original Traceback (most recent call last):" in text:  # a DataLoader worker's error, re-raised with its trace
        where = text.splitlines()[0].strip().rstrip(".").removeprefix("Caught ")
        last = next((line for line in reversed(text.strip().splitlines()) if line.strip()), "")
        text = f"{last.split(': ', 1)[-1]} ({where})"
    return " ".join(text.split()) or type(error).__name__


def closest(name: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """The registered names closest to ``name``: close spellings first, then names containing it."""
    choices = list(choices)
    found = difflib.get_close_matches(name, choices, n=n, cutoff=0.6)
    lowered = name.lower()
    for choice in choices:
        if len(found) >= n:
            break
        if choice not in found and lowered and (lowered in choice.lower() or choice.lower() in lowered):
            found.append(choice)
    if not found:
        found = difflib.get_close_matches(name, choices, n=n, cutoff=0.3)
    return found
