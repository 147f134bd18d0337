"""Content hashes of data files (streaming sha256), cached by (path, size, mtime) in the user cache folder,
so a 3 GB genome is read once, not on every command."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from gta.atomic import atomic_write_text
from gta.hashing import sha256_file

CACHE_NAME = "file_hashes.json"


def _cache_path() -> Path | None:
    try:
        from gta.resources import cache_dir

        return cache_dir() / CACHE_NAME
    except OSError:  # no writable cache folder: hash without caching
        return None


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def file_sha256(path: str | Path, progress: bool = False, use_cache: bool = True) -> str:
    """sha256 (hex) of a file's bytes, read in chunks; cached while its size and mtime stay the same."""
    path = Path(path)
    key = _stat_key(path)
    cache_file = _cache_path() if use_cache else None
    cache: dict[str, str] = {}
    if cache_file is not None and cache_file.exists():
        try:
            cache = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            cache = {}
        if key in cache:
            return cache[key]
    digest = sha256_file(path, progress=progress)
    if cache_file is not None:
        try:  # re-read so concurrent writers lose as little as possible; entries for vanished files are dropped
            fresh = json.loads(cache_file.read_text()) if cache_file.exists() else {}
        except (OSError, ValueError):
            fresh = {}
        fresh = {k: v for k, v in fresh.items() if os.path.exists(k.split("|", 1)[0])}
        fresh[key] = digest
        with contextlib.suppress(OSError):
            atomic_write_text(cache_file, json.dumps(fresh, indent=0, sort_keys=True))
    return digest


def files_fingerprint(files: Mapping[str, str | Path | None], progress: bool = False,
                      settings: Mapping[str, str] | None = None) -> str:
    """One hash over named files' contents (role -> path; None entries count as absent): 16 hex digits.
    ``settings`` (name -> text) are hashed too, after the files; without them the hash is that of the files."""
    h = hashlib.sha256()
    for role in sorted(files):
        path = files[role]
        digest = file_sha256(path, progress=progress) if path is not None else "-"
        h.update(f"{role}:{digest}\n".encode())
    for name in sorted(settings or {}):
        h.update(f"setting {name}={settings[name]}\n".encode())  # type: ignore[index]
    return h.hexdigest()[:16]
