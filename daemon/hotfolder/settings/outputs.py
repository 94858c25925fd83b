"""What one output is: its format, path and options, with defaults per format and per profile.

`profile` sets the metadata defaults so that nothing private leaks by accident:
archival keeps EXIF, GPS, XMP, IPTC and ICC; web keeps EXIF without GPS, drops XMP and IPTC
and converts to sRGB. Options given explicitly win.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from hotfolder.core.formats import DEFAULT_QUALITY, ENCODED_FORMATS, FORMATS, OUTPUT_EXTENSIONS
from hotfolder.core.template import FIELDS, Field, Literal, Template, TemplateSyntaxError, parse
from hotfolder.core.tempnames import COUNTER
from hotfolder.settings import schema

# `copy` writes the source's bytes unchanged (the only thing a rule may do with camera RAW).
OUTPUT_FORMATS: Final = (*ENCODED_FORMATS, "copy")
KEEP_STRIP: Final = ("keep", "strip")

# What identifies a person or a camera goes from web copies: a body or lens serial number links every
# photo posted anywhere to one camera, an owner name to one person, and a MakerNote holds both (and
# sometimes a location). Camera make and model, exposure, lens model and capture time stay.
_PRIVATE: Final = ("serials", "owner", "makernote")
PROFILES: Final[Mapping[str, Mapping[str, str]]] = {
    "archival": {
        **{"exif": "keep", "gps": "keep", "xmp": "keep", "iptc": "keep", "icc": "keep", "hdr": "keep"},
        **dict.fromkeys(_PRIVATE, "keep"),
        "provenance": "keep",
    },
    "web": {
        **{"exif": "keep", "gps": "strip", "xmp": "strip", "iptc": "strip", "icc": "srgb", "hdr": "tonemap"},
        **dict.fromkeys(_PRIVATE, "strip"),
        "provenance": "strip",
    },
}
DEFAULT_PROFILE: Final = {**{n: f.profile for n, f in FORMATS.items()}, "copy": "archival"}
TIFF_COMPRESSIONS: Final = ("none", "lzw", "deflate", "zstd")
# compress_level ranges per format (and TIFF compression); deflate 6 is zlib's and libvips' default.
COMPRESS_LEVELS: Final = {"png": (0, 9), "deflate": (1, 9), "zstd": (1, 22)}
DEFAULT_PNG_LEVEL: Final = 6
# What a stamp may set; each is written to every place the output's format holds it (render/stamp.py).
STAMP_FIELDS: Final = ("artist", "copyright", "credit", "title", "description", "keywords", "rights_url")
_STAMP_TEMPLATE_FIELDS: Final = FIELDS - {"seq"}


# x265's presets, fastest first. Defaults chosen by measurement on a 12.5 MP photo (docs/performance.md).
HEIF_PRESETS: Final = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower")
DEFAULT_HEIF_PRESET: Final = "fast"
DEFAULT_AVIF_SPEED: Final = 8
# libjxl's effort when the output gives none, per kind of encode. Measured on the 8 phone photos
# (docs/performance.md): a transcode is 0.832 of the JPEGs at efforts 3-7 (0.5-0.6 s a photo) and 0.830
# at 9 for ten times the time: 7, libjxl's own default. A lossless pixel encode of a 3 MP crop is 0.69
# of PNG-6's bytes at effort 1, 0.644 at 3 (0.37 s), 0.554 at 7 (5.7 s, 15x): 3, as fast as the
# archival PNG. Lossy: libjxl's default 7.
DEFAULT_JXL_EFFORT: Final = {"transcode": 7, "lossless": 3, "lossy": 7}


@dataclass(frozen=True)
class Output:
    """One file a rule writes for each input it matches; every option resolved to a value."""

    format: str
    path: Template
    profile: str = "archival"
    exif: str = "keep"
    gps: str = "keep"  # strip: GPS from EXIF and XMP, and location names from XMP and IPTC
    serials: str = "keep"  # strip: body, lens and camera serial numbers (EXIF, XMP)
    owner: str = "keep"  # strip: the camera owner's name (EXIF, XMP)
    makernote: str = "keep"  # strip: the maker's private block (serials, sometimes a location)
    provenance: str = "keep"  # keep: the original's name and SHA-256 in the XMP (render/stamp.py)
    xmp: str = "keep"
    iptc: str = "keep"
    icc: str = "keep"
    hdr: str = "keep"  # an HDR (PQ, HLG) source: "keep" as it is, or "tonemap" to SDR sRGB
    gain_map: str = "drop"  # jpeg: an Ultra HDR source's gain map "keep" (resized with it) or "drop"
    orientation: str = "upright"
    frames: str = "all"
    max_edge: int | None = None
    quality: int = 85
    compress_level: int | None = None  # png: 0-9 (6); tiff deflate 1-9, zstd 1-22 (the library's default)
    compression: str = "deflate"
    progressive: bool = False
    # jpeg: optimal Huffman tables (always with progressive), "max": mozjpeg's smallest file
    # (render/mozjpeg.py); png: the smallest file
    optimize: bool | str = False
    subsampling: str = "4:2:0"
    background: tuple[int, int, int] = (255, 255, 255)
    lossless: bool = False
    bit_depth: int | None = None  # heif: None = as the source (8, or 10/12 for deep sources)
    chroma: str | None = None  # heif: None = 420, or 444 when lossless
    preset: str = DEFAULT_HEIF_PRESET  # heif: x265's speed preset (docs/performance.md)
    speed: int = DEFAULT_AVIF_SPEED  # avif: the AV1 encoder's speed, 0 (slowest) .. 10
    effort: int | None = None  # jxl: libjxl's effort 1-9; None = DEFAULT_JXL_EFFORT for the encode's kind
    distance: float | None = None  # jxl lossy: libjxl's Butteraugli distance; None = from quality
    on_conflict: str = "skip_identical"
    counter_format: str = "-{n}"
    dpi: int | None = None  # set the print resolution instead of carrying the source's
    raw: str = "auto"  # camera RAW inputs: "auto", "preview" or "render" (archival: always render)
    raw_colour: str = "srgb"  # camera RAW renders: "srgb", "adobe" or "prophoto"
    sidecar_xmp: str = "merge"  # a group's XMP sidecar: its descriptive fields merged over the picture's
    with_companions: bool = False  # copy outputs: the group's companions copied beside, renamed alike
    # A motion photo's video: "drop" (a re-encode cannot carry it) or "extract" it beside the picture,
    # at `motion_path` (None: the output's name with .mp4, or .mov for a QuickTime video)
    motion: str = "drop"
    motion_path: Template | None = None
    # (field, template(s)): authorship written over the source's for those fields only
    stamp: tuple[tuple[str, Template | tuple[Template, ...]], ...] = ()

    def transcode_blocker(self) -> str | None:
        """Why this output cannot carry a JPEG's own bytes, or None when it does: a jxl output of a JPEG
        source transcoded (rebuildable byte for byte), a jpeg output of a JPEG XL that holds a JPEG's
        reconstruction data written as that JPEG. Anything that changes the JPEG's pixels or metadata
        bytes makes it an encode from pixels."""
        if self.format not in ("jxl", "jpeg"):
            return f"a {self.format} output"
        changes = [
            ("lossless = false", self.format == "jxl" and not self.lossless),
            ("max_edge", self.max_edge is not None),
            ('orientation = "upright"', self.orientation == "upright"),
            ('icc = "srgb"', self.icc == "srgb"),
            ("stamp", bool(self.stamp)),
            ("dpi", self.dpi is not None),
            ('frames = "first"', self.frames == "first"),
            *(
                (f'{k} = "strip"', getattr(self, k) == "strip")
                for k in ("exif", "gps", "xmp", "iptc", "serials", "owner", "makernote")
            ),
        ]
        asked = [what for what, applies in changes if applies]
        return f"the output asks {', '.join(asked)}" if asked else None

    @property
    def is_lossless(self) -> bool:
        """Whether the written pixels must equal the transformed source exactly."""
        if self.format == "copy":
            return True
        kind = FORMATS[self.format].lossless
        return kind == "always" or (kind == "option" and self.lossless)


CONFLICT_POLICIES: Final = ("skip_identical", "skip", "overwrite", "counter")
# What a camera RAW input becomes for this output: its embedded JPEG preview, a LibRaw render, or
# (auto) the preview when it is large enough for a web output, a render otherwise.
RAW_SOURCES: Final = ("auto", "preview", "render")
RAW_COLOURS: Final = ("srgb", "adobe", "prophoto")  # the primaries a render is developed into


def stamp(value: Any) -> tuple[tuple[str, Template | tuple[Template, ...]], ...]:
    """A table of authorship fields, each a text template (keywords: a list of them)."""
    if not isinstance(value, dict) or not value:
        raise ValueError('must be a table of fields, e.g. stamp = { artist = "Jane Doe" }')
    unknown = sorted(value.keys() - set(STAMP_FIELDS))
    if unknown:
        raise ValueError(f"unknown stamp field {unknown[0]!r}; known: {', '.join(STAMP_FIELDS)}")
    parsed: list[tuple[str, Template | tuple[Template, ...]]] = []
    for key in STAMP_FIELDS:
        if key not in value:
            continue
        raw = value[key]
        texts = raw if key == "keywords" and isinstance(raw, list) else [raw]
        if not texts or not all(isinstance(t, str) and t for t in texts):
            kind = "a text or a list of texts" if key == "keywords" else "a non-empty text"
            raise ValueError(f"stamp.{key} must be {kind}, not {raw!r}")
        try:
            templates = tuple(parse(t, known=_STAMP_TEMPLATE_FIELDS, path=False) for t in texts)
        except TemplateSyntaxError as exc:
            raise ValueError(f"stamp.{key}: {exc}") from None
        parsed.append((key, templates if key == "keywords" else templates[0]))
    return tuple(parsed)


def extension_problem(fmt: str, template: Template) -> str | None:
    """Why an encoded output's path cannot end as it does, or None: the extension must say the format."""
    if fmt not in OUTPUT_EXTENSIONS:
        return None  # copy: the source's own bytes, under whatever name
    fits = " ".join(f".{e}" for e in OUTPUT_EXTENSIONS[fmt])
    last = template.parts[-1] if template.parts else None
    if isinstance(last, Field) or last is None:
        return (
            f"the file name has no literal extension (it ends in a field: '.{{ext}}' fits only copy); "
            f"{fmt} outputs end in {fits}"
        )
    assert isinstance(last, Literal)
    name = last.text.rsplit("/", 1)[-1]
    _, dot, ext = name.rpartition(".")
    if not dot or ext.lower() not in OUTPUT_EXTENSIONS[fmt]:
        said = f"'.{ext}'" if dot else "no extension"
        return f"the file name ends in {said}, which is not {fmt}; {fmt} outputs end in {fits} (any case)"
    return None


def counter_format(value: Any) -> str:
    """A suffix with one {n} or {n:02d} in it, and no separators."""
    if not isinstance(value, str) or len(COUNTER.findall(value)) != 1 or "/" in value or "\\" in value:
        raise ValueError(f"must hold exactly one {{n}} or {{n:02d}} and no '/', not {value!r}")
    return value


_ALL: Final = None
_KEYS: Final[Mapping[str, tuple[schema.Validator, frozenset[str] | None]]] = {
    "format": (schema.choice(OUTPUT_FORMATS), _ALL),
    "path": (schema.template, _ALL),
    "profile": (schema.choice(PROFILES), frozenset(ENCODED_FORMATS)),
    "exif": (schema.choice(KEEP_STRIP), frozenset(ENCODED_FORMATS)),
    "gps": (schema.choice(KEEP_STRIP), frozenset(ENCODED_FORMATS)),
    "serials": (schema.choice(KEEP_STRIP), frozenset(ENCODED_FORMATS)),
    "owner": (schema.choice(KEEP_STRIP), frozenset(ENCODED_FORMATS)),
    "makernote": (schema.choice(KEEP_STRIP), frozenset(ENCODED_FORMATS)),
    "provenance": (schema.choice(KEEP_STRIP), frozenset(ENCODED_FORMATS)),
    "xmp": (schema.choice(KEEP_STRIP), frozenset(ENCODED_FORMATS)),
    "iptc": (schema.choice(KEEP_STRIP), frozenset(ENCODED_FORMATS)),
    "icc": (schema.choice(("keep", "srgb")), frozenset(ENCODED_FORMATS)),
    "hdr": (schema.choice(("keep", "tonemap")), frozenset(ENCODED_FORMATS)),
    "gain_map": (schema.choice(("drop", "keep")), frozenset({"jpeg"})),
    "orientation": (schema.choice(("upright", "keep")), frozenset(ENCODED_FORMATS)),
    "frames": (schema.choice(("all", "first")), frozenset(ENCODED_FORMATS)),
    "max_edge": (schema.int_range(1), frozenset(ENCODED_FORMATS)),
    "quality": (schema.int_range(0, 100), frozenset({"jpeg", "heif", "webp", "avif", "jxl"})),
    "compress_level": (schema.int_range(0, 22), frozenset({"png", "tiff"})),
    "compression": (schema.choice(TIFF_COMPRESSIONS), frozenset({"tiff"})),
    "progressive": (schema.boolean, frozenset({"jpeg"})),
    "optimize": (schema.boolean_or("max"), frozenset({"jpeg", "png"})),
    "subsampling": (schema.choice(("4:4:4", "4:2:2", "4:2:0")), frozenset({"jpeg"})),
    "background": (schema.colour, frozenset({"jpeg"})),
    "lossless": (schema.boolean, frozenset(n for n, f in FORMATS.items() if f.lossless == "option")),
    "bit_depth": (schema.choice((8, 10, 12)), frozenset({"heif"})),
    "chroma": (schema.choice(("420", "422", "444")), frozenset({"heif"})),
    "preset": (schema.choice(HEIF_PRESETS), frozenset({"heif"})),
    "speed": (schema.int_range(0, 10), frozenset({"avif"})),
    "effort": (schema.int_range(1, 9), frozenset({"jxl"})),
    "distance": (schema.number_range(0.05, 25.0), frozenset({"jxl"})),
    "on_conflict": (schema.choice(CONFLICT_POLICIES), _ALL),
    "counter_format": (counter_format, _ALL),
    "dpi": (schema.int_range(1, 10_000), frozenset(ENCODED_FORMATS)),
    "stamp": (stamp, frozenset(ENCODED_FORMATS)),
    "raw": (schema.choice(RAW_SOURCES), frozenset(ENCODED_FORMATS)),
    "raw_colour": (schema.choice(RAW_COLOURS), frozenset(ENCODED_FORMATS)),
    "sidecar_xmp": (schema.choice(("merge", "ignore")), frozenset(ENCODED_FORMATS)),
    "with_companions": (schema.boolean, frozenset({"copy"})),
    "motion": (schema.choice(("drop", "extract")), _ALL),
    "motion_path": (schema.template, _ALL),
}

Problem = Callable[[str, str | None, int | None], None]
# Why a format whose HDR support depends on the installed writers cannot keep HDR here, or None.
HdrProbe = Callable[[str], str | None]


def no_probe(fmt: str) -> str | None:
    """The answer without a probe (a bare load of the rules): not known to work, so refused."""
    return f"no writer was asked whether it can write HDR {fmt} here"


def parse_output(
    raw: dict[str, Any],
    line_of: Callable[[str | None], int | None],
    problem: Problem,
    hdr_probe: HdrProbe = no_probe,
) -> Output | None:
    """Validate one [[rule.output]] table; report each problem; None if any."""
    fmt = raw.get("format")
    values: dict[str, Any] = {}
    ok = True
    for key in ("format", "path"):
        if key not in raw:
            problem(f"[[rule.output]] needs {key!r}", f"output.{key}", line_of(None))
            ok = False
    for key, value in raw.items():
        spec = _KEYS.get(key)
        if spec is None:
            problem(
                f"unknown key in [[rule.output]]; known: {', '.join(_KEYS)}", f"output.{key}", line_of(key)
            )
            ok = False
            continue
        check, applies = spec
        if applies is not None and fmt in OUTPUT_FORMATS and fmt not in applies:
            problem(f"does not apply to format {fmt!r}", f"output.{key}", line_of(key))
            ok = False
            continue
        try:
            values[key] = check(value)
        except ValueError as exc:
            problem(str(exc), f"output.{key}", line_of(key))
            ok = False
    if values.get("format") == "heif" and values.get("lossless") and values.get("chroma", "444") != "444":
        problem(
            "lossless HEIF needs chroma 444 (a subsampled image cannot be lossless)",
            "output.chroma",
            line_of("chroma"),
        )
        ok = False
    for message, key in _cross_checks(values, hdr_probe):
        problem(message, f"output.{key}", line_of(key))
        ok = False
    if not ok:
        return None
    fmt = values["format"]
    profile = values.get("profile", DEFAULT_PROFILE[fmt])
    resolved = {**PROFILES[profile], "profile": profile, **values}
    if fmt in DEFAULT_QUALITY:
        resolved.setdefault("quality", DEFAULT_QUALITY[fmt])
    if fmt == "png":
        resolved.setdefault("compress_level", DEFAULT_PNG_LEVEL)
    if fmt == "jxl" and profile == "archival":
        # An archive: lossless, and a JPEG's orientation kept as it is (in the codestream's orientation
        # field, so viewers show it upright) so that the JPEG can be transcoded and rebuilt.
        resolved.setdefault("lossless", True)
        resolved.setdefault("orientation", "keep")
    if "hdr" not in values and fmt in FORMATS and FORMATS[fmt].hdr != "yes":
        resolved["hdr"] = "tonemap"  # an archival JPEG of an HDR source: SDR is all it can hold
    return Output(**resolved)


def _cross_checks(values: Mapping[str, Any], hdr_probe: HdrProbe = no_probe) -> list[tuple[str, str]]:
    """Options that are fine alone but not together, and a path whose extension contradicts the format."""
    found = []
    fmt = values.get("format")
    if values.get("hdr") == "keep" and isinstance(fmt, str) and fmt in FORMATS and FORMATS[fmt].hdr != "yes":
        carriers = ", ".join(n for n, f in FORMATS.items() if f.hdr == "yes")
        why = "it holds 8-bit SDR only" if FORMATS[fmt].hdr == "no" else hdr_probe(fmt)
        if why is not None:
            found.append(
                (
                    f'{fmt} cannot keep HDR here: {why}; use hdr = "tonemap" (SDR sRGB), or format '
                    f"{carriers} for an HDR output",
                    "hdr",
                )
            )
    if isinstance(fmt, str) and isinstance(values.get("path"), Template):
        why = extension_problem(fmt, values["path"])
        if why is not None:
            found.append((why, "path"))
    if "motion_path" in values:
        why = _motion_path_problem(values)
        if why is not None:
            found.append((why, "motion_path"))
    profile = values.get("profile", DEFAULT_PROFILE.get(fmt, "archival") if isinstance(fmt, str) else None)
    if values.get("raw") == "preview" and profile == "archival":
        why = (
            "an archival output is always rendered from the raw data: the camera's preview as an archive "
            'would lose the picture; use raw = "render" or "auto", or profile = "web"'
        )
        found.append((why, "raw"))
    if values.get("optimize") == "max":
        found.extend(_smallest_jpeg_problems(values))
    if fmt == "jxl" and values.get("lossless", profile == "archival"):
        found.extend(
            (f"{key} is for a lossy jxl; this one is lossless (set lossless = false)", key)
            for key in ("quality", "distance")
            if key in values
        )
    if fmt == "jxl" and "quality" in values and "distance" in values:
        found.append(("give quality or distance, not both (distance is libjxl's own scale)", "distance"))
    level = values.get("compress_level")
    if level is not None and fmt in ("png", "tiff"):
        kind = "png" if fmt == "png" else values.get("compression", "deflate")
        if kind not in COMPRESS_LEVELS:
            found.append(
                (
                    f"compression {kind!r} takes no level; compress_level applies to deflate (1-9) "
                    "and zstd (1-22)",
                    "compress_level",
                )
            )
        elif kind == "zstd":
            why = (
                "a zstd level cannot be set here: Pillow's TIFF writer has no level setting and the libvips "
                'build (which has one) has no zstd; use compression = "deflate" with compress_level 1-9, or '
                "zstd at its default level"
            )
            found.append((why, "compress_level"))
        else:
            lo, hi = COMPRESS_LEVELS[kind]
            if not lo <= level <= hi:
                found.append((f"{kind} levels are {lo}..{hi}, not {level}", "compress_level"))
    return found


def _motion_path_problem(values: Mapping[str, Any]) -> str | None:
    """Why `motion_path` cannot be used as given: it needs `motion = "extract"` and a video's extension."""
    if values.get("motion") != "extract":
        return 'motion_path says where a motion photo\'s video goes: it needs motion = "extract"'
    template = values["motion_path"]
    last = template.parts[-1] if template.parts else None
    name = last.text.rsplit("/", 1)[-1] if isinstance(last, Literal) else ""
    if not name.lower().endswith((".mp4", ".mov")):
        return "the video's file name must end in .mp4 or .mov (a literal extension)"
    return None


def _smallest_jpeg_problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What `optimize = "max"` (mozjpeg through libvips) cannot be combined with."""
    if values.get("format") != "jpeg":
        return [('"max" is for jpeg (mozjpeg\'s smallest file); png takes true or false', "optimize")]
    found = []
    if values.get("subsampling") == "4:2:2":
        found.append(
            ('optimize = "max" writes 4:2:0 or 4:4:4 (libvips\' encoder has no 4:2:2)', "subsampling")
        )
    if values.get("gain_map") == "keep":
        why = 'an Ultra HDR JPEG is written by libultrahdr, which has no optimize = "max"; use true'
        found.append((why, "optimize"))
    return found
