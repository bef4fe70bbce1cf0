"""Push an exported model (an HF folder, or a GGUF with its Modelfile and card) to a Hugging Face Hub repo.

huggingface_hub does the work: `create_repo(private=True, exist_ok=True)` then `upload_folder`. The
token comes from huggingface_hub's own lookup (HF_TOKEN, or what `hf auth login` stored); it is never
printed. Offline, the push fails within seconds with one line, through the same reachability probe
that model loading uses (lm.models.check_hub_reachable), instead of the client's long retries.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from llmrl_core.core.errors import InputError, WorkbenchError


class HubPushError(WorkbenchError):
    """The upload to the Hub failed (unreachable, refused, no permission); the local export is intact."""


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if the Hub would accept it as a model repo name ('you/name' or 'name'), else an InputError."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise InputError(f"{repo_id!r} is not a Hub repo id; give one such as your-name/smollm2-grpo ({err}).") from None
    return repo_id


def stage_gguf_folder(gguf_path: Path, folder: Path) -> Path:
    """Link the GGUF and its siblings into `folder` under the names the Hub shows (README.md, Modelfile)."""
    names = {gguf_path: gguf_path.name, gguf_path.with_suffix(".Modelfile"): "Modelfile",
             gguf_path.with_suffix(".README.md"): "README.md"}
    for source, name in names.items():
        if not source.is_file():
            continue
        try:
            os.link(source, folder / name)  # no copy of a large file
        except OSError:
            (folder / name).symlink_to(source.resolve())
    return folder


def push_export(path: str | Path, repo_id: str, *, token: str | None = None) -> str:
    """Upload the export at `path` to the private Hub repo `repo_id` (created if missing); return its URL."""
    from llmrl_core.lm.models import _hub_host, check_hub_reachable

    path = Path(path).expanduser()
    check_repo_id(repo_id)
    if not path.exists():
        raise InputError(f"{path} does not exist; export the model first, then push it.")
    if not check_hub_reachable():
        raise HubPushError(f"Cannot push to {repo_id}: the Hugging Face hub ({_hub_host()}) is unreachable from this "
                           f"machine. The export is safe at {path}; push it again when online.")
    import huggingface_hub

    token = token or huggingface_hub.get_token()
    if not token:
        raise InputError("No Hugging Face token found: run `hf auth login` or set HF_TOKEN, then push again.")
    try:
        url = huggingface_hub.create_repo(repo_id, private=True, exist_ok=True, token=token, repo_type="model")
        with tempfile.TemporaryDirectory(prefix=".hub-push-", dir=path.parent) as scratch:
            folder = path if path.is_dir() else stage_gguf_folder(path, Path(scratch))
            huggingface_hub.upload_folder(repo_id=repo_id, folder_path=str(folder), token=token, repo_type="model",
                                          commit_message="Upload from the LLM·RL Workbench")
    except Exception as err:  # HTTP errors, connection drops: one line, without the token
        message = str(err).replace(token, "***").splitlines()[0] if str(err) else type(err).__name__
        raise HubPushError(f"Pushing to {repo_id} failed: {message}. The export is safe at {path}.") from None
    return str(url)
