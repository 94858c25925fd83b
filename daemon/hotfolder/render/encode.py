"""Write one rendered output in its format: the dispatch to each format's writer.

Nothing travels implicitly (Pillow and pillow-heif copy `info` items on their own): each writer
receives exactly the EXIF, XMP, ICC and IPTC the output's options allow, and logs what its
format cannot hold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Final

from hotfolder.errors import EncodeError, is_transient
from hotfolder.render.notes import Notes
from hotfolder.render.tiff import write_tiff
from hotfolder.render.transform import Rendered
from hotfolder.render.writers import write_avif, write_heif, write_jpeg, write_jxl, write_png, write_webp
from hotfolder.settings.outputs import Output

Writer = Callable[[Rendered, Output, IO[bytes], Notes], None]


def encode(rendered: Rendered, output: Output, fp: IO[bytes], *, notes: Notes) -> None:
    """Write the rendered output to fp in its format."""
    try:
        _WRITERS[output.format](rendered, output, fp, notes)
    except EncodeError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if is_transient(exc):
            raise  # disk full and friends: the job waits and retries, the input is fine
        raise EncodeError(f"cannot write {output.format}: {exc}") from exc


# HEIF, WebP, AVIF ----------------------------------------------------------------------------


_WRITERS: Final[dict[str, Writer]] = {
    "jpeg": write_jpeg,
    "png": write_png,
    "tiff": write_tiff,
    "heif": write_heif,
    "webp": write_webp,
    "avif": write_avif,
    "jxl": write_jxl,
}
