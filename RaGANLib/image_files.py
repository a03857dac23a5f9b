"""Checks of an image file before it is read: what its header declares, against the bytes the file holds and the
memory of this machine, and a gzip-compressed file read to the end of its stream.

Without them a truncated .nii or .nii.gz reads as a volume whose missing part is zeros (and trains), and a 300-byte
header that declares 3000x3000x300 voxels makes the reader allocate gigabytes before it fails. SimpleITK itself
refuses a truncated NRRD or MetaImage, but only after allocating the whole declared volume.
"""

import gzip
import math
import os
import zlib
from pathlib import Path

import SimpleITK as sitk

from RaGANLib.errors import BadInput

GZIP_MAGIC = b"\x1f\x8b"
DEFLATE_MAX_RATIO = 1032  # deflate (gzip, zlib) never expands data more than this, even for all zeros
MEMORY_SHARE = 0.5  # a volume, as the float32 array preparation works on, may take this share of physical memory
HEADER_LIMIT = 1 << 16  # NRRD and MetaImage headers are text; bytes read to find where the voxel data starts


def check_image_file(path: Path, role: str) -> None:
    """Refuse a file whose header declares more voxels than the file can hold or this machine can work on, or
    whose gzip stream is damaged or ends early. Raises RuntimeError (as reading does) for a header SimpleITK
    cannot read."""
    what = f"{role} '{path}'"
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    size = reader.GetSize()
    voxels = math.prod(size)
    pixel = sitk.Image([1, 1], reader.GetPixelID(), reader.GetNumberOfComponents())
    declared = voxels * pixel.GetSizeOfPixelComponent() * pixel.GetNumberOfComponentsPerPixel()
    declaration = f"declares {'x'.join(map(str, size))} voxels of {pixel.GetPixelIDTypeAsString()} ({_bytes(declared)})"

    memory = _physical_memory()
    if memory and voxels * 4 > MEMORY_SHARE * memory:
        raise BadInput(
            f"{what} {declaration}: as float32 for preparation that is {_bytes(voxels * 4)}, more than "
            f"{MEMORY_SHARE:.0%} of this machine's {_bytes(memory)} of memory; crop or downsample it first"
        )
    with open(path, "rb") as handle:
        head = handle.read(HEADER_LIMIT)
    name = path.name.lower()
    if head.startswith(GZIP_MAGIC):
        minimum = int(float(reader.GetMetaData("vox_offset"))) if reader.HasMetaDataKey("vox_offset") else 0
        _check_gzip_file(path, what, declaration, minimum + declared)
    elif name.endswith(".nii") and reader.HasMetaDataKey("vox_offset"):
        _check_holds(what, declaration, path.stat().st_size - int(float(reader.GetMetaData("vox_offset"))), declared)
    elif name.endswith((".nrrd", ".nhdr")):
        _check_text_header(path, what, declaration, head, declared, _nrrd_layout)
    elif name.endswith((".mha", ".mhd")):
        _check_text_header(path, what, declaration, head, declared, _metaimage_layout)


def _check_holds(what: str, declaration: str, stored: int, declared: int, compressed: bool = False) -> None:
    """Refuse when `stored` bytes of voxel data (compressed or not) cannot hold `declared` bytes."""
    if compressed and declared > DEFLATE_MAX_RATIO * max(stored, 0):
        raise BadInput(
            f"{what} {declaration} but holds only {_bytes(stored)} of compressed data, which cannot expand to that: "
            "its header is wrong or the file is truncated"
        )
    if not compressed and stored < declared:
        raise BadInput(
            f"{what} {declaration} but holds only {_bytes(max(stored, 0))} of voxel data: it is truncated "
            "(an interrupted copy or download?) or its header is wrong"
        )


def _check_gzip_file(path: Path, what: str, declaration: str, needed: int) -> None:
    """A whole-file gzip (.nii.gz): plausible size first, then the stream read to its end (length and CRC)."""
    _check_holds(what, declaration, path.stat().st_size, needed, compressed=True)
    unpacked = 0
    try:
        with gzip.open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                unpacked += len(block)
    except (EOFError, OSError, zlib.error) as error:
        raise BadInput(
            f"{what} is damaged: its gzip stream {'ends early' if isinstance(error, EOFError) else 'is corrupt'} "
            f"after {_bytes(unpacked)} ({error}); the file is truncated or was changed"
        ) from None
    if unpacked < needed:
        raise BadInput(f"{what} {declaration} but its gzip stream holds only {_bytes(unpacked)}: it is truncated")


def _check_text_header(path: Path, what: str, declaration: str, head: bytes, declared: int, layout) -> None:
    """NRRD and MetaImage: a text header, then voxel data in the same file or in one data file beside it."""
    found = layout(head)
    if found is None:  # a header we do not follow (several data files, bzip2, text encodings): reading will tell
        return
    header_end, data_file, compressed = found
    if data_file is not None:
        path, header_end = path.parent / data_file, 0
        if not path.is_file():
            return  # SimpleITK names the missing data file
    _check_holds(what, declaration, path.stat().st_size - header_end, declared, compressed)


def _nrrd_layout(head: bytes):
    """(where the data starts, detached data file or None, compressed) of a NRRD header, or None."""
    text = head.decode("latin-1")
    end = next((i for i in (text.find("\n\n"), text.find("\r\n\r\n")) if i >= 0), -1)
    fields = {}
    for line in text[: end if end >= 0 else len(text)].splitlines()[1:]:
        key, separator, value = line.partition(":")
        if separator and not line.startswith("#"):
            fields[key.strip().lower()] = value.strip().lstrip("=").strip()
    encoding = fields.get("encoding", "raw").lower()
    data_file = fields.get("data file", fields.get("datafile"))
    if encoding not in ("raw", "gzip", "gz") or (data_file and " " in data_file) or data_file == "LIST":
        return None
    if data_file is None and end < 0:
        return None
    return (end + (2 if text[end] == "\n" else 4) if end >= 0 else 0), data_file, encoding != "raw"


def _metaimage_layout(head: bytes):
    """(where the data starts, detached data file or None, compressed) of a MetaImage header, or None."""
    text = head.decode("latin-1")
    fields, offset = {}, 0
    for line in text.splitlines(keepends=True):
        offset += len(line)
        key, _, value = line.partition("=")
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            break
    else:
        return None
    data_file = fields["elementdatafile"]
    compressed = fields.get("compresseddata", "false").lower() == "true"
    if data_file.upper() == "LOCAL":
        return offset, None, compressed
    if data_file.upper() == "LIST" or "%" in data_file or " " in data_file:
        return None
    return 0, data_file, compressed


def _physical_memory() -> int | None:
    """Bytes of physical memory, where the platform tells (not on Windows: the memory check is skipped there)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _bytes(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"
