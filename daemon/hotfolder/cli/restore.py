"""`hotfolder restore FILE.jxl... [--to DIR]`: the original JPEGs back from their JPEG XL archives, each
proven by the SHA-256 hotfolder recorded when it archived it (in the archive's own box, and in the
ledger when it still has the row), never over an existing file."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from hotfolder import names
from hotfolder.commit import atomic
from hotfolder.commit.ledger import LEDGER_NAME, Ledger
from hotfolder.core import tempnames
from hotfolder.decide import jxl
from hotfolder.errors import HotfolderError, InputError
from hotfolder.settings.config import Config


class RestoreError(HotfolderError):
    """One archive that cannot give its JPEG back (the message says why)."""


def restore(config: Config, files: list[Path], *, to: Path | None) -> int:
    """Rebuild each archive's JPEG beside it (or in `to`); exit 1 if any cannot be rebuilt and proven."""
    ledger = Ledger(config.state_dir, readonly=True) if (config.state_dir / LEDGER_NAME).exists() else None
    failed = 0
    try:
        for archive in files:
            try:
                dest, proof = _restore_one(archive, to, ledger)
            except (RestoreError, OSError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                print(f"hotfolder: {names.readable(archive)}: {why}", file=sys.stderr)
                failed += 1
                continue
            print(f"{names.readable(archive)} -> {names.readable(dest)} ({proof})")
    finally:
        if ledger is not None:
            ledger.close()
    return 1 if failed else 0


def _restore_one(archive: Path, to: Path | None, ledger: Ledger | None) -> tuple[Path, str]:
    data = archive.read_bytes()
    if not data.startswith(jxl.SIGNATURES):
        raise RestoreError("not a JPEG XL file")
    if not jxl.rebuildable(data):
        raise RestoreError(
            "holds no JPEG reconstruction data (it was written from pixels: no JPEG to give back)"
        )
    recorded = jxl.recorded_sha256(data)
    known = ledger.source_of(archive.absolute()) if ledger is not None else None
    if recorded is None and known is None:
        raise RestoreError(
            "no SHA-256 of its JPEG was recorded (not archived by hotfolder): nothing to prove it by"
        )
    try:
        jpeg = jxl.rebuild(data)
    except InputError as exc:
        raise RestoreError(str(exc)) from None
    digest = hashlib.sha256(jpeg).hexdigest()
    proofs = []
    for where, wanted in (("its archive box", recorded), ("the ledger", known[1] if known else None)):
        if wanted is None:
            continue
        if wanted != digest:
            raise RestoreError(
                f"the rebuilt JPEG's SHA-256 {digest[:16]}... differs from {where}'s {wanted[:16]}..."
            )
        proofs.append(where)
    folder = to if to is not None else archive.parent
    dest = folder / (known[0].name if known else archive.stem + ".jpg")
    if dest.exists() or dest.is_symlink():
        raise RestoreError(f"{names.readable(dest)} exists: never overwritten (move it, or give --to)")
    temp = tempnames.temp_path(dest)
    atomic.stage_at(temp, lambda fp: fp.write(jpeg))
    try:
        atomic.rename_noreplace(temp, dest)
    except FileExistsError:
        raise RestoreError(f"{names.readable(dest)} appeared meanwhile: never overwritten") from None
    finally:
        temp.unlink(missing_ok=True)
    atomic.fsync_dir(folder)
    return dest, f"SHA-256 {digest[:16]}... as recorded in {' and '.join(proofs)}"
