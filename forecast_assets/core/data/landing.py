"""The landing folder: new sales files arrive here, are ingested, or go to quarantine.

The sensor side (``scan_landing``) only lists the folder and stats entries, never opens a file,
so that it stays cheap on every tick. The ingest side checks each file again
(``landing_path``, ``check_unchanged``) before reading it and moves refused files to a
quarantine folder with a ``.reason.txt`` sidecar (``quarantine``).

Cursor rule: a file is processed again when its size or modification time changes, and also
when it disappears and is delivered again later (names no longer in the folder are forgotten so
that the cursor does not grow forever). A re-delivered file therefore wins over the earlier one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forecast_assets.core.errors import ConfigurationError, DataValidationError
from forecast_assets.core.storage import atomic_write_text

logger = logging.getLogger(__name__)

SETTLE_SECONDS_DEFAULT = 60.0
# Uploads in progress; names starting with "." (hidden, or temporary files) are skipped too.
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart", "~")
REASON_SUFFIX = ".reason.txt"


class FileChangedError(DataValidationError):
    """The file changed after the sensor saw it (still being written): retried, not quarantined."""


@dataclass(frozen=True)
class LandingFile:
    """A landing file as the sensor saw it: its plain name, size and modification time."""

    name: str
    size: int
    mtime_ns: int

    @property
    def fingerprint(self) -> str:
        return f"{self.size}:{self.mtime_ns}"

    @property
    def key(self) -> str:
        """Unique per delivery of a name; used as the Dagster run key."""
        return f"{self.name}@{self.fingerprint}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "mtime_ns": self.mtime_ns}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LandingFile:
        try:
            name, size, mtime_ns = data["name"], data["size"], data["mtime_ns"]
        except (KeyError, TypeError) as exc:
            raise DataValidationError(f"not a landing file description: {data!r}") from exc
        if not isinstance(name, str) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in (size, mtime_ns)
        ):
            raise DataValidationError(f"not a landing file description: {data!r}")
        return cls(name, size, mtime_ns)


@dataclass(frozen=True)
class LandingScan:
    """What one sensor tick found."""

    ready: list[LandingFile]  # to ingest now, oldest modification time first, then by name
    waiting: list[LandingFile]  # new or changed but not settled yet (maybe still being written)
    cursor: str  # the new cursor (JSON text) to store
    files_seen: int  # entries listed (after skipping directories, hidden and temporary names)


def scan_landing(
    folder: Path,
    cursor: str | None,
    now: float,
    settle_seconds: float = SETTLE_SECONDS_DEFAULT,
    limit: int | None = None,
) -> LandingScan:
    """List ``folder`` and tell which files are ready to ingest, given the previous cursor.

    A new or changed file is ready once it is settled: the previous tick saw the same size and
    modification time, or it was last modified at least ``settle_seconds`` before ``now``
    (seconds since the epoch). At most ``limit`` files are ready per tick, oldest first; the
    rest come on the next ticks. Never opens a file.
    """
    if limit is not None and limit < 1:
        raise ConfigurationError(f"the landing scan limit must be at least 1, got {limit}")
    done, seen = _read_cursor(cursor)
    settled_before_ns = int((now - settle_seconds) * 1_000_000_000)
    present: set[str] = set()
    ready: list[LandingFile] = []
    waiting: list[LandingFile] = []
    new_seen: dict[str, str] = {}
    try:
        entries = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise DataValidationError(
            "the landing folder does not exist (or is not a folder)", source=str(folder)
        ) from exc
    except OSError as exc:
        raise DataValidationError(
            f"the landing folder cannot be listed ({exc})", source=str(folder)
        ) from exc
    with entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name.lower().endswith(IGNORED_SUFFIXES):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # removed while listing
                continue
            if stat.S_ISDIR(info.st_mode):
                continue
            present.add(name)
            file = LandingFile(name, info.st_size, info.st_mtime_ns)
            fingerprint = file.fingerprint
            if done.get(name) == fingerprint:
                continue
            new_seen[name] = fingerprint
            if seen.get(name) == fingerprint or file.mtime_ns <= settled_before_ns:
                ready.append(file)
            else:
                waiting.append(file)
    ready.sort(key=_age_order)
    waiting.sort(key=_age_order)
    if limit is not None:
        ready = ready[:limit]
    new_done = {name: fp for name, fp in done.items() if name in present}
    new_done.update((file.name, file.fingerprint) for file in ready)
    text = json.dumps({"done": new_done, "seen": new_seen}, sort_keys=True, separators=(",", ":"))
    return LandingScan(ready=ready, waiting=waiting, cursor=text, files_seen=len(present))


def is_safe_name(name: str) -> bool:
    """Whether ``name`` is a plain file name that stays inside the folder it is joined to."""
    if not name or name in (".", "..") or "\0" in name or os.path.isabs(name):
        return False
    separators = {"/", os.sep, os.altsep} - {None}
    # Without separators, ".." can only be the whole name, which is refused above.
    return not any(sep in name for sep in separators)


def landing_path(folder: Path, name: str) -> Path:
    """The path of the landing file ``name`` inside ``folder``, once it is safe to read.

    Raises DataValidationError (source=name) for a name that points outside the folder, that
    no longer exists, a symlink to a target outside the folder, or anything but a regular file.
    """
    if not is_safe_name(name):
        raise DataValidationError("points outside the landing folder", source=name)
    path = folder / name
    try:
        info = os.lstat(path)
    except FileNotFoundError as exc:
        raise DataValidationError("no longer exists in the landing folder", source=name) from exc
    if stat.S_ISLNK(info.st_mode):
        try:
            target = path.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise DataValidationError(
                f"is a symlink that cannot be resolved ({exc})", source=name
            ) from exc
        if not target.is_relative_to(folder.resolve()):
            raise DataValidationError(
                f"is a symlink to {target}, outside the landing folder", source=name
            )
        try:
            info = os.stat(path)
        except OSError as exc:
            raise DataValidationError(
                f"is a symlink to {target}, which does not exist", source=name
            ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise DataValidationError(
            f"is not a regular file (it is a {_kind(info.st_mode)})", source=name
        )
    return path


def check_unchanged(path: Path, expected: LandingFile) -> None:
    """Raise FileChangedError when ``path`` differs from what the sensor saw (size, mtime)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError as exc:
        raise FileChangedError(
            "disappeared since it was detected; it is no longer in the landing folder",
            source=expected.name,
        ) from exc
    if info.st_size != expected.size or info.st_mtime_ns != expected.mtime_ns:
        raise FileChangedError(
            f"changed since it was detected (size {expected.size} -> {info.st_size} bytes, "
            f"mtime_ns {expected.mtime_ns} -> {info.st_mtime_ns}); it is probably still being "
            "written and will be ingested once it stops changing",
            source=expected.name,
        )


def quarantine(
    folder: Path,
    quarantine_dir: Path,
    name: str,
    reason: str,
    *,
    run_id: str | None = None,
    now: datetime | None = None,
) -> Path | None:
    """Move ``folder/name`` to ``quarantine_dir`` and write a ``.reason.txt`` beside it.

    The moved file is named ``<UTC time>-<name>`` (a counter is added on collision). A symlink
    is moved itself, never its target. Returns the new path, or None when nothing was moved:
    the name is not a plain name in ``folder``, does not exist, or is a directory.
    """
    if not is_safe_name(name):
        logger.warning("not quarantining %r: it is not a plain name in %s", name, folder)
        return None
    source = folder / name
    try:
        info = os.lstat(source)
    except FileNotFoundError:
        logger.warning("not quarantining %s: it no longer exists", source)
        return None
    if stat.S_ISDIR(info.st_mode):
        # Never move folders around (the quarantine folder itself may live in the landing one).
        logger.warning("not quarantining %s: it is a directory", source)
        return None
    moment = _utc(now)
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = _free_target(quarantine_dir, f"{moment:%Y%m%dT%H%M%SZ}", name)
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # Another filesystem: copy and delete (shutil.move recreates a symlink as a symlink).
        shutil.move(source, target)
    sidecar = target.with_name(target.name + REASON_SUFFIX)
    atomic_write_text(
        sidecar,
        "\n".join(
            [
                f"file: {name}",
                f"reason: {reason}",
                f"quarantined_at: {moment.isoformat().replace('+00:00', 'Z')}",
                f"run_id: {run_id or '-'}",
                f"size: {info.st_size} bytes",
                "",
            ]
        ),
    )
    logger.info("quarantined %s as %s: %s", source, target, reason)
    return target


def _read_cursor(cursor: str | None) -> tuple[dict[str, str], dict[str, str]]:
    if not cursor:
        return {}, {}
    try:
        data = json.loads(cursor)
    except ValueError as exc:
        raise DataValidationError(f"the landing cursor is not valid JSON ({exc})") from exc
    parts = [data.get(key, {}) for key in ("done", "seen")] if isinstance(data, dict) else None
    if parts is None or not all(
        isinstance(part, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in part.items())
        for part in parts
    ):
        raise DataValidationError(
            'the landing cursor does not have the shape {"done": {name: fingerprint}, '
            '"seen": {name: fingerprint}}'
        )
    return parts[0], parts[1]


def _age_order(file: LandingFile) -> tuple[int, str]:
    return file.mtime_ns, file.name


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    # A naive time is taken as UTC already.
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _free_target(directory: Path, stamp: str, name: str) -> Path:
    """A path in ``directory`` that neither exists nor has a sidecar yet.

    Check-then-rename is not atomic; two runs quarantining the same name within the same second
    are the only way to collide, which landing runs (one per delivery) make unlikely enough.
    """
    counter = 0
    while True:
        moved = f"{stamp}-{name}" if counter == 0 else f"{stamp}-{counter}-{name}"
        target = directory / moved
        sidecar = directory / (moved + REASON_SUFFIX)
        if not os.path.lexists(target) and not os.path.lexists(sidecar):
            return target
        counter += 1


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: "directory",
        stat.S_ISFIFO: "named pipe",
        stat.S_ISSOCK: "socket",
        stat.S_ISCHR: "character device",
        stat.S_ISBLK: "block device",
        stat.S_ISLNK: "symlink",
    }
    return next((label for test, label in kinds.items() if test(mode)), "special file")
