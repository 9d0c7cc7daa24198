"""Atomic file writes: a killed process never leaves a half-written file that a later run trusts."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` to produce the file, then move it over ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def replace_marked_block(path: str | Path, start: str, end: str, block: str) -> Path:
    """Replace the text from the line holding ``start`` to the one holding ``end`` (markers included) by
    ``block``, atomically. This is how generated numbers get into READMEs and recipe headers."""
    import re

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        from zoo.errors import ZooError

        raise ZooError(f"{path} has no '{start} ... {end}' block to fill in")
    return atomic_write_text(path, pattern.sub(lambda _: block, text, count=1))


def fill_marked_section(path: str | Path, name: str, text: str) -> Path:
    """Put ``text`` between the ``<!-- name:start -->`` and ``<!-- name:end -->`` lines of ``path``, markers kept:
    how the benchmarks' tables get into README.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    return replace_marked_block(path, start, end, "\n".join([start, text.strip("\n"), end]))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, document, indent: int = 2) -> Path:
    """``document`` as indented JSON with a final newline; NumPy and torch scalars are written as numbers."""
    import json

    return atomic_write_text(path, json.dumps(document, indent=indent, default=_json_scalar) + "\n")


def _json_scalar(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def switch_folder(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write a folder as a whole: ``write(staged)`` fills a hidden sibling, which then takes ``path``'s place (the old
    folder moves aside first and is removed after). Leftovers of an interrupted switch are removed on the next one."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.switch-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{path.name}.switch-new-", dir=path.parent))
    try:
        write(staged)
        os.chmod(staged, 0o777 & ~_umask())
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.switch-old-", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(staged, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staged, path)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return path


_CLAIMED: dict[str, str] = {}
_MADE: list[str] = []  # parent folders new_run_dir created (removed again with an empty failed run)


def new_run_dir(parent: str | Path, prefix: str = "") -> str:
    """A new folder ``parent/PREFIX<date>_<time>`` that no other run has: ``mkdir`` claims it (atomic, so two runs
    started in the same second, even on a shared file system, get ``..._<time>``, ``..._<time>-2``, ...). The same
    (parent, prefix) gives the same folder for the rest of this process (Hydra may resolve the path twice)."""
    from datetime import datetime

    key = f"{Path(parent).resolve()}|{prefix}"
    if key in _CLAIMED:
        return _CLAIMED[key]
    stamp = prefix + datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    job = _shared_launch(parent)
    missing = [p for p in [Path(parent), *Path(parent).parents] if not p.exists()]
    Path(parent).mkdir(parents=True, exist_ok=True)
    _MADE.extend(str(p) for p in missing)
    if job is not None:  # every process of the launch, on every node, writes into the one folder of its job
        path = Path(parent) / f"{prefix}job-{job}"
        path.mkdir(exist_ok=True)
        _CLAIMED[key] = str(path)
        return str(path)
    for n in range(1, 10_000):
        path = Path(parent) / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        _CLAIMED[key] = str(path)
        return str(path)
    raise FileExistsError(f"{parent}: no free run folder name for {stamp}")


def _shared_launch(parent: str | Path) -> str | None:
    """The job id a multi-process launch shares (SLURM's job, torchrun's rendezvous id), when processes other than
    Lightning's own started ``zoo train`` (several nodes): each process names its run folder, and a name by the clock
    would differ between nodes. None for a single process; an error for a rank > 0 that cannot agree with rank 0."""
    import re

    ranks = max(int(os.environ.get(v, "1") or 1) for v in ("WORLD_SIZE", "SLURM_NTASKS"))
    if ranks <= 1:
        return None
    for var in ("SLURM_JOB_ID", "TORCHELASTIC_RUN_ID"):
        value = os.environ.get(var, "")
        if value and value != "none" and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
            return value
    rank = max(int(os.environ.get(v, "0") or 0) for v in ("RANK", "SLURM_PROCID"))
    if rank == 0:
        return None
    from zoo.errors import ConfigError

    raise ConfigError(f"process {rank} of {ranks} cannot know the run folder process 0 named under {parent}: give every "
                      "node the same hydra.run.dir=DIR, or launch with a job id (SLURM, or torchrun --rdzv-id)")


def claimed(path: str | Path) -> bool:
    """Whether :func:`new_run_dir` made ``path`` in this process."""
    return str(Path(path).resolve()) in {str(Path(p).resolve()) for p in _CLAIMED.values()}


def remove_claimed(path: str | Path) -> None:
    """Remove a folder :func:`new_run_dir` made, and the parents it made for it that are now empty."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    for parent in sorted(_MADE, key=len, reverse=True):
        try:
            Path(parent).rmdir()  # only if empty
        except OSError:
            pass
