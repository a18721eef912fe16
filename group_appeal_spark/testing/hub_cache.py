"""Repo folders laid out as huggingface_hub's cache, so the real loaders find them offline."""

from __future__ import annotations

import hashlib
import pathlib
import shutil
import tempfile

from group_appeal_spark.testing.repos import build_tiny_repos

__all__ = ["install_into_hub_cache", "build_tiny_hub_cache"]

# Optional files transformers asks the hub for when loading configs and tokenizers.
_PROBED_FILES = (
    "config.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
    "processor_config.json",
    "preprocessor_config.json",
)


def _snapshot_sha(folder):
    """sha1 over the sorted relative file names and contents: a stable fake commit id."""
    h = hashlib.sha1()
    for path in sorted(p for p in pathlib.Path(folder).rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        h.update(rel.encode("utf-8") + b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def install_into_hub_cache(folder, cache_dir, repo_id):
    """Lay a repo folder out as huggingface_hub's cache for ``repo_id``.

    Writes ``cache_dir/models--<org>--<name>/refs/main`` (a commit sha derived from the
    files), ``snapshots/<sha>/<files>`` as plain copies (no blobs or symlinks, so the
    cache survives being zipped or shipped to Spark workers) and, as an online download
    leaves them, ``.no_exist/<sha>/<name>`` markers for optional files the repo lacks.

    Parameters
    ----------
    folder : str or path-like
        A folder as written by :func:`build_tiny_repos`.
    cache_dir : str or path-like
        The hub cache root (what ``HF_HUB_CACHE`` points at).
    repo_id : str
        e.g. ``"roberta-base"`` or ``"maxwlnd/cl_mention_embedding"``.

    Returns
    -------
    pathlib.Path
        The snapshot folder.
    """
    folder = pathlib.Path(folder)
    repo_dir = pathlib.Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    sha = _snapshot_sha(folder)
    snapshot = repo_dir / "snapshots" / sha
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(folder, snapshot)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(sha, encoding="utf-8")
    # An online run records each file the hub answered 404 for as .no_exist/<sha>/<name>;
    # offline, transformers then treats the file as absent instead of raising "couldn't
    # connect". AutoTokenizer needs this for config.json in the embedder repo, which has none.
    no_exist = repo_dir / ".no_exist" / sha
    for name in _PROBED_FILES:
        if not (folder / name).exists():
            no_exist.mkdir(parents=True, exist_ok=True)
            (no_exist / name).write_bytes(b"")
    return snapshot


def build_tiny_hub_cache(cache_dir, *, seed=0, bert_vocab=None, **kw):
    """Build the five tiny repos and install them into a hub cache.

    Parameters
    ----------
    cache_dir : str or path-like
        Hub cache root; point ``HF_HUB_CACHE`` at it and set ``HF_HUB_OFFLINE=1`` before
        ``huggingface_hub`` is first imported.
    seed, bert_vocab, **kw
        Passed to :func:`build_tiny_repos`.

    Returns
    -------
    dict of str to pathlib.Path
        ``{repo_id: snapshot folder}``.
    """
    cache_dir = pathlib.Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tiny_repos_") as tmp:
        folders = build_tiny_repos(tmp, seed=seed, bert_vocab=bert_vocab, **kw)
        return {rid: install_into_hub_cache(f, cache_dir, rid) for rid, f in folders.items()}
