"""The official DARS release from the Hugging Face Hub, into the darsbench cache (docs/convert.md).

Dataset repo ``AIGNLAI/DARS`` pinned to :data:`REVISION`; the files of ``<name>/`` are fetched
with ``huggingface_hub.hf_hub_download`` (progress bars, resume after an interruption, the
Hub's own cache layout under ``<darsbench cache>/hub``). Offline, a cached copy is used; with
none, :class:`ReleaseUnavailable` says so in one line with the manual download command.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from benchmark.data.cache import default_cache_dir
from benchmark.data.dars_format import METADATA_FILE, TEST_FILE, TRAIN_FILE
from benchmark.data.errors import DataError

REPO_ID = "AIGNLAI/DARS"
#: The release revision every darsbench number refers to (overridable, e.g. ``--revision main``).
REVISION = "3109e08fb15b24192c0284b9fc11ca9f71110950"
RELEASE_NAMES = ("gpqa", "math-500", "drop-800")
_REQUIRED = (TRAIN_FILE, TEST_FILE)
_OPTIONAL = (METADATA_FILE,)


class ReleaseUnavailable(DataError):
    """The release files are neither cached nor downloadable now (the message says what to run)."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{REPO_ID} {name}", None, None, detail)


@dataclass(frozen=True)
class FetchResult:
    """Where a release dataset lies: ``data_dir / name / {train,test}_scored_generations.jsonl``."""

    name: str
    data_dir: Path
    revision: str
    from_cache: bool


def hub_cache(cache_root: str | os.PathLike | None = None) -> Path:
    """The Hub cache inside the darsbench cache."""
    return (Path(cache_root).expanduser() if cache_root is not None else default_cache_dir()) / "hub"


def manual_command(name: str, revision: str = REVISION) -> str:
    return (f"hf download {REPO_ID} --repo-type dataset --revision {revision} --include '{name}/*' --local-dir DIR"
            f" && darsbench dataset=dars dataset.name={name} dataset.data_dir=DIR")


def _hub():  # huggingface_hub is an optional dependency: imported where the release is fetched
    try:
        import huggingface_hub  # optional dependency
        from huggingface_hub import constants  # optional dependency
    except ModuleNotFoundError:
        return None, None
    return huggingface_hub, constants


@contextlib.contextmanager
def _network(allowed: bool) -> Iterator[None]:
    """Let huggingface_hub reach the network for an explicit download even when darsbench set
    ``HF_HUB_OFFLINE=1`` for the rest of the process (it reads the flag once, at import)."""
    _, constants = _hub()
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = not allowed
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def env_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def fetch_release(
    name: str,
    *,
    revision: str = REVISION,
    cache_root: str | os.PathLike | None = None,
    offline: bool | None = None,
    progress: bool = True,
) -> FetchResult:
    """The release folder of ``name`` (gpqa, math-500, drop-800), downloaded when not cached.

    ``offline`` None reads ``HF_HUB_OFFLINE``. The Hub endpoint is ``HF_ENDPOINT`` when set.
    Raises :class:`ReleaseUnavailable` (one line, with the manual download command).
    """
    if name not in RELEASE_NAMES:
        raise ReleaseUnavailable(name, f"unknown release dataset {name!r}; the release has {', '.join(RELEASE_NAMES)}")
    hub, constants = _hub()
    if hub is None:
        raise ReleaseUnavailable(name, "fetching the release needs `pip install huggingface_hub`; or download by hand: "
                                 + manual_command(name, revision))
    offline = env_offline() if offline is None else offline
    cache = hub_cache(cache_root)
    cached = _cached(hub, name, revision, cache)
    if cached is not None:
        return FetchResult(name, cached, revision, True)
    if offline:
        raise ReleaseUnavailable(name, f"offline (HF_HUB_OFFLINE) and revision {revision[:12]} is not in {cache}; "
                                 f"run `darsbench-fetch {name}` online, or download by hand: {manual_command(name, revision)}")
    endpoint = os.environ.get("HF_ENDPOINT") or None
    _probe(name, endpoint or constants.ENDPOINT, revision)
    paths = []
    if not progress:
        hub.utils.disable_progress_bars()
    with _network(True):
        for filename in _REQUIRED + _OPTIONAL:
            try:
                paths.append(Path(hub.hf_hub_download(
                    REPO_ID, f"{name}/{filename}", repo_type="dataset", revision=revision, cache_dir=cache,
                    endpoint=endpoint, etag_timeout=20)))
            except hub.errors.LocalEntryNotFoundError as exc:  # (a subclass of EntryNotFoundError)
                first = " ".join(str(exc).split())[:200]
                raise ReleaseUnavailable(name, f"cannot download from {endpoint or constants.ENDPOINT} ({first}); "
                                         f"download by hand: {manual_command(name, revision)}") from None
            except hub.errors.EntryNotFoundError:
                if filename in _REQUIRED:
                    raise ReleaseUnavailable(name, f"{name}/{filename} is not in {REPO_ID} at revision {revision}") from None
            except hub.errors.RevisionNotFoundError:
                raise ReleaseUnavailable(name, f"revision {revision!r} does not exist in {REPO_ID}") from None
            except hub.errors.RepositoryNotFoundError:
                raise ReleaseUnavailable(name, f"the dataset repo {REPO_ID} is not reachable at "
                                         f"{endpoint or constants.ENDPOINT} (not found or private)") from None
            except OSError as exc:
                first = " ".join(str(exc).split())[:200]
                raise ReleaseUnavailable(name, f"cannot download from {endpoint or constants.ENDPOINT} ({first}); "
                                         f"download by hand: {manual_command(name, revision)}") from None
    if not progress:
        hub.utils.enable_progress_bars()
    return FetchResult(name, paths[0].parent.parent, revision, False)


def _probe(name: str, endpoint: str, revision: str, timeout_s: float = 10.0) -> None:
    """Fail at once, in one line, when the Hub cannot be reached (huggingface_hub would retry a
    refused connection for about 20 s before giving up)."""
    try:
        httpx.head(endpoint, timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise ReleaseUnavailable(name, f"cannot reach {endpoint} ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); "
                                 f"no network? download by hand: {manual_command(name, revision)}") from None


def _cached(hub, name: str, revision: str, cache: Path) -> Path | None:
    """The snapshot folder holding ``<name>/`` when every required file of the revision is cached."""
    found = []
    with _network(False):
        for filename in _REQUIRED:
            try:
                found.append(Path(hub.hf_hub_download(REPO_ID, f"{name}/{filename}", repo_type="dataset",
                                                      revision=revision, cache_dir=cache, local_files_only=True)))
            except (hub.errors.LocalEntryNotFoundError, hub.errors.EntryNotFoundError, OSError, ValueError):
                return None
    return found[0].parent.parent
