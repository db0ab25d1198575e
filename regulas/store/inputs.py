"""Pinned inputs: the files a study's config names and its data fingerprint, as recorded at
its first run (table ``study_input``), checked again before a rerun writes anything.

A rerun of the same config resumes the study, skipping its done tasks; that is only right
while the inputs are the ones the done tasks read. The check is cheap when nothing
changed: a file whose size and modification time equal the recorded ones is trusted, any
other is hashed (sha256) and differs when its content does.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

#: bytes read at a time while hashing a file
HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class FileState:
    """An input file as found: absolute path, size (bytes), mtime (UNIX s), sha256 if computed."""

    path: str
    size: int
    mtime: float
    sha256: str | None = None

    @classmethod
    def of(cls, path: str | Path, *, digest: bool = False) -> FileState:
        """A file, or a folder (a Zarr table): its files' total size and latest mtime."""
        p = Path(path)
        if p.is_dir():
            stats = [f.stat() for f in _files_in(p)]
            size = sum(st.st_size for st in stats)
            mtime = max((st.st_mtime for st in stats), default=p.stat().st_mtime)
            return cls(str(p), size, mtime, sha256_of(p) if digest else None)
        st = p.stat()
        return cls(str(p), st.st_size, st.st_mtime, sha256_of(p) if digest else None)

    def with_digest(self) -> FileState:
        return self if self.sha256 is not None else replace(self, sha256=sha256_of(Path(self.path)))

    def same_stat(self, other: FileState) -> bool:
        return self.size == other.size and self.mtime == other.mtime


def _files_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.rglob("*") if f.is_file())


def sha256_of(path: Path) -> str:
    """sha256 of a file's bytes; of a folder, over each file's relative path and bytes."""
    h = hashlib.sha256()
    for f in _files_in(path) if path.is_dir() else [path]:
        if f != path:
            h.update(f"{f.relative_to(path).as_posix()}\0".encode())
        with f.open("rb") as fh:
            while block := fh.read(HASH_BLOCK):
                h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class InputCheck:
    """What a rerun found: files whose content changed (recorded, now; now is None when
    the file is gone), files that only look changed (same content: their new stat is
    recorded) and files the study has no record of (recorded as they are now)."""

    changed: list[tuple[FileState, FileState | None]]
    refreshed: list[FileState]
    unrecorded: list[FileState]


def compare_files(recorded: Mapping[str, FileState], current: Iterable[FileState]) -> InputCheck:
    """Compare the files found now with the recorded ones; hash only those whose size or
    mtime differ (and the unrecorded ones, to record them)."""
    changed: list[tuple[FileState, FileState | None]] = []
    refreshed: list[FileState] = []
    unrecorded: list[FileState] = []
    seen = set()
    for now in current:
        seen.add(now.path)
        old = recorded.get(now.path)
        if old is None:
            unrecorded.append(now.with_digest())
        elif not old.same_stat(now):
            now = now.with_digest()
            if now.sha256 == old.sha256:
                refreshed.append(now)
            else:
                changed.append((old, now))
    for path, old in recorded.items():
        if path not in seen and not Path(path).exists():
            changed.append((old, None))
    return InputCheck(changed, refreshed, unrecorded)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def describe_change(old: FileState, new: FileState | None) -> str:
    if new is None:
        return f"{old.path} (gone; was {old.size} bytes, modified {_when(old.mtime)})"
    return (f"{old.path} (size {old.size} -> {new.size} bytes, modified {_when(old.mtime)} -> {_when(new.mtime)}, "
            "content differs)")


def fix_hint(config: str) -> str:
    return (f"to keep the old results, run the new inputs as another study (a new study.name or store.root); "
            f"to discard them and start this study again: regulas run {config} --restart")
