"""Animations verified as a viewer sees them (issue 29): what is on screen at every instant and for how
long, not a frame count. Writers that merge repeated frames (Pillow's APNG, libwebp) pass; one that
changes the timeline fails and says at which time. GIFs are made here block by block, so that their
repeated frames stay repeated (Pillow's and libvips' GIF writers merge them)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import pyvips
from PIL import Image

from conftest import output, run_outputs
from hotfolder.errors import EncodeError
from hotfolder.render.metadata import Metadata
from hotfolder.render.transform import Rendered
from hotfolder.render.verify import verify

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def gif_frames(colours: list[tuple[int, int, int]], delays: list[int]) -> bytes:
    """A GIF of one 16x16 frame per (colour, delay), written block by block: repeats are kept as stored."""
    palette = sorted(set(colours))
    flat = [c for rgb in palette for c in rgb] + [0] * (768 - 3 * len(palette))
    head, blocks = b"", []
    for colour, delay in zip(colours, delays, strict=True):
        im = Image.new("P", (16, 16), palette.index(colour))
        im.putpalette(flat)
        buf = io.BytesIO()
        im.save(buf, "GIF", duration=delay, optimize=False)
        data = buf.getvalue()
        start = data.index(b"\x21\xf9")  # the graphic control extension opens the frame
        head = head or data[:start]
        blocks.append(data[start:-1])
    return head + b"".join(blocks) + b"\x3b"


def _timeline_pillow(path: Path) -> list[tuple[tuple[int, ...], int]]:
    """(colour, ms) per change of what is shown, decoded by Pillow."""
    shown: list[tuple[tuple[int, ...], int]] = []
    with Image.open(path) as im:
        for index in range(getattr(im, "n_frames", 1)):
            im.seek(index)
            im.load()
            colour, ms = im.convert("RGB").getpixel((8, 8)), int(im.info.get("duration") or 0)
            if shown and shown[-1][0] == colour:
                shown[-1] = (colour, shown[-1][1] + ms)
            else:
                shown.append((colour, ms))
    return shown


def _timeline_vips(path: Path) -> list[tuple[tuple[int, ...], int]]:
    """The same, decoded by libvips (another decoder than the writer's)."""
    im = pyvips.Image.new_from_file(str(path), n=-1)
    height = im.get("page-height")
    shown: list[tuple[tuple[int, ...], int]] = []
    for index, ms in enumerate(im.get("delay")):
        colour = tuple(int(v) for v in im.crop(8, index * height + 8, 1, 1).getpoint(0, 0)[:3])
        if shown and shown[-1][0] == colour:
            shown[-1] = (colour, shown[-1][1] + ms)
        else:
            shown.append((colour, ms))
    return shown


def test_repeated_frames_and_uneven_delays_keep_their_timeline(tmp_path: Path) -> None:
    """Six GIF frames, red three times, green twice, blue once, with uneven delays: every output is
    written (verification used to count 3 frames where it expected 6 and quarantine the picture), and
    each shows red for 210 ms, green for 100 ms, blue for 200 ms, looping as the source."""
    src = tmp_path / "repeats.gif"
    src.write_bytes(gif_frames([RED, RED, RED, GREEN, GREEN, BLUE], [50, 70, 90, 40, 60, 200]))
    outputs = [
        output(format="png"),
        output(format="webp", path="{stem}.webp", lossless=True),
        output(format="webp", path="{stem}-lossy.webp", quality=90),
        output(format="tiff", path="{stem}.tif"),
        output(format="jpeg", path="{stem}.jpg"),
    ]
    done = run_outputs(tmp_path, src, *outputs)
    assert done.status == "done", done.error
    want = [(RED, 210), (GREEN, 100), (BLUE, 200)]
    assert _timeline_pillow(tmp_path / "out" / "repeats.png") == want  # libvips reads no APNG frames
    assert _timeline_vips(tmp_path / "out" / "repeats.webp") == want
    lossy = _timeline_vips(tmp_path / "out" / "repeats-lossy.webp")
    assert [ms for _, ms in lossy] == [210, 100, 200]
    with Image.open(tmp_path / "out" / "repeats.tif") as tif:
        assert tif.n_frames == 6  # pages: every frame, in order, no timing


def _apng(colours: list[tuple[int, int, int]], delays: list[int]) -> bytes:
    buf = io.BytesIO()
    frames = [Image.new("RGB", (16, 16), c) for c in colours]
    frames[0].save(
        buf,
        "PNG",
        save_all=True,
        append_images=frames[1:],
        duration=delays,
        loop=0,
        default_image=False,
        disposal=0,
        blend=0,
    )
    return buf.getvalue()


def _rendered(colours: list[tuple[int, int, int]], delays: list[int]) -> Rendered:
    return Rendered(
        views=[Image.new("RGB", (16, 16), c) for c in colours], meta=Metadata(), durations=delays, loop=0
    )


@pytest.mark.parametrize(
    ("written", "said"),
    [
        pytest.param(
            ([RED, GREEN, BLUE], [100, 200, 100]),
            "shows something else than the source at 100 ms",
            id="green_too_early",
        ),
        pytest.param(([RED, GREEN, BLUE], [200, 50, 50]), "lasts 300 ms, the source 400 ms", id="shorter"),
        pytest.param(
            ([RED, BLUE, BLUE], [200, 100, 100]),
            "shows something else than the source at 200 ms",
            id="a_frame_lost",
        ),
    ],
)
def test_a_changed_timeline_fails_and_says_when(
    written: tuple[list[tuple[int, int, int]], list[int]], said: str
) -> None:
    """A lossless APNG whose timeline is not the source's (red 200, green 100, blue 100): refused with the
    instant it differs at; the same frames merged or split are accepted."""
    source = _rendered([RED, RED, GREEN, BLUE], [100, 100, 100, 100])
    with pytest.raises(EncodeError, match=said):
        verify(_apng(*written), source, output(format="png"))
    verify(_apng([RED, GREEN, BLUE], [200, 100, 100]), source, output(format="png"))  # merged: the same
    verify(
        _apng([RED, RED, RED, GREEN, BLUE], [50, 50, 100, 100, 100]), source, output(format="png")
    )  # split


def test_a_lossy_animation_may_merge_but_never_moves_a_change() -> None:
    """Lossy WebP: frames merged by the encoder pass; a frame change at a time the source has none fails."""
    source = _rendered([RED, GREEN, BLUE], [100, 100, 100])
    lossy = output(format="webp", path="{stem}.webp", quality=80)
    buf = io.BytesIO()
    frames = [Image.new("RGB", (16, 16), c) for c in (RED, GREEN, BLUE)]
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=[150, 50, 100], quality=80)
    with pytest.raises(EncodeError, match="has a frame change at 150 ms"):
        verify(buf.getvalue(), source, lossy)
