"""``zoo push`` / ``zoo.push``: publish a run or a saved model, with its model card, to the Hugging Face Hub.

It sits above the cards it uploads (:mod:`zoo.card`); downloads stay in :mod:`zoo.hub`, below everything that
loads weights.
"""
from __future__ import annotations

import os
from pathlib import Path

from zoo.card import stage_for_push
from zoo.errors import HubError
from zoo.hub import LIBRARY_NAME, REPO_ID, check_revision, error_reason, transport_errors


def push(
    source: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    bench_dirs: tuple[str, ...] = ("runs/bench",),
) -> dict:
    """Publish a ``zoo train`` run or a ``zoo.save`` folder to ``repo_id`` on the Hub.

    Uploads ``config.json``, ``model.safetensors``, ``README.md`` (the model card), ONNX exports with their
    verification reports, and the resolved recipe (``recipe.yaml``), in one commit, through ``create_repo`` and
    ``upload_folder``. The token comes from where every Hugging Face tool looks (``HF_TOKEN``, then the file
    ``hf auth login`` writes); it is never printed or written anywhere. Returns the repo URL, commit and files.
    """
    import tempfile

    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HfHubHTTPError

    if not REPO_ID.match(repo_id) or ".." in repo_id:
        raise HubError(f"repo id {repo_id!r} is not ORG/NAME (letters, digits, '.', '_', '-'); e.g. --repo-id my-org/yolov10n-parts")
    if revision:
        check_revision(revision)
    if get_token() is None:
        raise HubError("no Hugging Face token: run `hf auth login` or set HF_TOKEN to a token with write access; nothing was uploaded")
    api = HfApi(library_name=LIBRARY_NAME)
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as folder:
        files = stage_for_push(source, folder, bench_dirs=bench_dirs, repo_id=repo_id)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            if revision and revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            commit = api.upload_folder(folder_path=folder, repo_id=repo_id, revision=revision,
                                       commit_message=commit_message or f"Upload {Path(str(source)).name} with efficient-zoo")
        except HfHubHTTPError as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            hint = {401: "the token was refused: log in again with `hf auth login`",
                    403: f"the token cannot write to {repo_id}: use a write token, or a namespace you own"}.get(status, "")
            raise HubError(f"push to {repo_id} at {constants.ENDPOINT} failed: {error_reason(e)}" + (f"; {hint}" if hint else "")) from None
        except ValueError as e:  # the Hub refused the card's front matter (validate-yaml)
            raise HubError(f"push to {repo_id} failed: the Hub refused README.md's metadata: {error_reason(e)} "
                           f"{' '.join(str(e).splitlines()[1:])}; nothing was committed") from None
        except transport_errors() as e:
            raise HubError(f"push to {repo_id} at {constants.ENDPOINT} failed: {error_reason(e)}. Check your connection or "
                           "HF_ENDPOINT; nothing partial is visible on the Hub (a commit is all or nothing).") from None
    return {"url": str(url), "repo_id": repo_id, "revision": revision or "main", "commit": commit.oid, "files": files}
