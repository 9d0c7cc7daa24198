"""Downloads from the Hugging Face Hub, through ``huggingface_hub``.

The standard cache, ``HF_HOME``/``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and revision
pinning all behave as in every Hugging Face library, because ``hf_hub_download`` does the work. What
this module adds: ``hf-hub:`` source parsing, one clear error per failure, and a guarantee that a
corrupt or truncated file never stays in the cache for a later load to trust (the blob is checked
against its SHA-256 ETag, and a file that fails to parse is evicted).
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from zoo.errors import CorruptWeightsError, HubError, SourceError

HF_HUB_PREFIX = "hf-hub:"
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")
# A branch, tag, commit or refs/pr/N: git's ref characters, no "..", no leading "/" or "-" (the cache stores refs
# as files named after the revision, so a revision must never name a path outside it).
_REVISION = re.compile(r"^(?![/.-])(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,128}(?<![/.])$")
LIBRARY_NAME = "efficient-zoo"


def parse_hf_hub(source: str) -> tuple[str, str | None]:
    """``"hf-hub:org/name@rev"`` -> ``("org/name", "rev")``; the revision is optional."""
    expected = "expected hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION (a branch, tag or commit)"
    if not source.startswith(HF_HUB_PREFIX):
        raise SourceError(f"{source!r} is not an hf-hub: source; {expected}")
    body = source[len(HF_HUB_PREFIX) :]
    repo_id, sep, revision = body.partition("@")
    if not REPO_ID.match(repo_id) or repo_id.endswith((".", "-")) or ".." in repo_id or (sep and not revision):
        raise SourceError(f"malformed model source {source!r}: {expected}")
    if revision:
        check_revision(revision)
    return repo_id, (revision or None)


def check_revision(revision: str) -> str:
    """``revision`` if it is a well-formed branch, tag or commit name; a SourceError otherwise."""
    if not _REVISION.match(revision) or revision.endswith(".lock"):
        raise SourceError(f"malformed Hub revision {revision!r}: a branch, tag or commit uses letters, digits, '.', '_', "
                          "'-' and '/' (no '..', no leading '/', '.' or '-')")
    return revision


def is_commit(text: str) -> bool:
    """Whether ``text`` is a full git commit hash (what the cache names a snapshot folder after)."""
    return bool(_GIT_SHA1.match(text))


def download(repo_id: str, filename: str, revision: str | None = None, optional: bool = False) -> Path | None:
    """Download (or find in the cache) one file of a Hub model repo; return its local path (None for an
    ``optional`` file the repo does not have)."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from zoo._version import __version__

    where = f"{repo_id}/{filename}" + (f"@{revision}" if revision else "")
    if revision:
        check_revision(revision)
    try:
        path = hf_hub_download(
            repo_id, filename, revision=revision, library_name=LIBRARY_NAME, library_version=__version__
        )
    except LocalEntryNotFoundError as e:
        if constants.HF_HUB_OFFLINE:
            raise HubError(
                f"{where} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and offline "
                "mode is on (HF_HUB_OFFLINE=1). Unset HF_HUB_OFFLINE and load it once online, or copy the "
                "cache from a machine that has it."
            ) from None
        raise HubError(
            f"could not download {where} from {constants.ENDPOINT} and it is not in the local cache: "
            f"{error_reason(e)}. Check your connection or HF_ENDPOINT."
        ) from None
    except GatedRepoError:
        raise HubError(f"{repo_id} is gated: accept its terms on the Hub, then log in with `hf auth login`.") from None
    except RepositoryNotFoundError:
        raise HubError(
            f"Hub repo {repo_id!r} not found at {constants.ENDPOINT} (or it is private: log in with "
            "`hf auth login`). Check the spelling of the repo id."
        ) from None
    except RevisionNotFoundError:
        raise HubError(f"{repo_id} has no revision {revision!r}; use a branch, tag or commit that exists.") from None
    except EntryNotFoundError:
        if optional:
            return None
        raise HubError(f"{repo_id} has no file {filename!r}" + (f" at revision {revision!r}" if revision else "")) from None
    except HfHubHTTPError as e:
        raise HubError(f"download of {where} failed: {error_reason(e)}") from None
    except ValueError as e:  # huggingface_hub refuses a commit or path from the server that would leave the cache
        raise HubError(f"download of {where} refused: {error_reason(e)} Check HF_ENDPOINT: a mirror or proxy sent a "
                       "malformed commit or file name") from None
    except OSError as e:  # connection errors, incomplete transfers, disk full
        raise HubError(f"download of {where} failed: {error_reason(e)}. Try again: a partial download is resumed, never used.") from None
    path = Path(path)
    if not path.resolve().is_relative_to(Path(constants.HF_HUB_CACHE).resolve()):
        raise HubError(f"{where}: the server's answer put the file outside the Hub cache ({path}); it is not used. "
                       "Check HF_ENDPOINT: a mirror or proxy sent a malformed commit or file name")
    verify_cached(path, where)
    return path


def verify_cached(path: Path, where: str) -> None:
    """Check a cached Hub file against the hash its blob is named after; evict it on mismatch.

    The Hub's ETag, which names the blob, is the SHA-256 of LFS files (weights) and the git blob SHA-1
    of small files. Caches without symlinks (some Windows setups) keep no blob name to check against;
    there a damaged file is still caught when it fails to parse.
    """
    blob = Path(os.path.realpath(path))
    if _SHA256.match(blob.name):
        digest = hashlib.sha256()
    elif _GIT_SHA1.match(blob.name):
        digest = hashlib.sha1(b"blob %d\0" % blob.stat().st_size)
    else:
        return
    with open(blob, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != blob.name:
        evict(path)
        raise CorruptWeightsError(
            f"{where} is corrupt or truncated (its hash does not match the Hub's ETag); it was removed from "
            "the cache, so the next load downloads it again."
        )


def evict(path: Path) -> None:
    """Remove a cached Hub file (the snapshot link and its blob) so no later load trusts it."""
    path = Path(path)
    blob = Path(os.path.realpath(path))
    for p in {path, blob}:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def transport_errors() -> tuple[type[BaseException], ...]:
    """Connection failures: OSError, and the transport errors of whichever httpx huggingface_hub uses."""
    import importlib

    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def error_reason(e: BaseException) -> str:
    """The first line of an error, led by the HTTP status somewhere in its chain (a 5xx says the server failed)."""
    text = str(e).strip().splitlines()
    first = text[0] if text else type(e).__name__
    seen, cause = set(), e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if isinstance(status, int):
            if status >= 500:
                return f"the server answered HTTP {status} (its own failure; try again later, or another HF_ENDPOINT): {first}"
            return f"HTTP {status}: {first}"
        cause = cause.__cause__ or cause.__context__
    return first
