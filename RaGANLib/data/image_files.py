"""Checks of an image file before it is read: what its header declares, against the bytes the file holds and the
memory of this machine, and a gzip-compressed file read to the end of its stream.

Without them a truncated .nii or .nii.gz reads as a volume whose missing part is zeros (and trains), and a 300-byte
header that declares 3000x3000x300 voxels makes the reader allocate gigabytes before it fails. SimpleITK itself
refuses a truncated NRRD or MetaImage, but only after allocating the whole declared volume.
"""

import math
import os
import zlib
from pathlib import Path

import SimpleITK as sitk

from RaGANLib.errors import BadInput

GZIP_MAGIC = b"\x1f\x8b"
GZIP, ZLIB = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS  # zlib's window bits for a gzip and a zlib stream
DEFLATE_MAX_RATIO = 1032  # deflate (gzip, zlib) never expands data more than this, even for all zeros
MEMORY_SHARE = 0.5  # a volume, as the float32 array preparation works on, may take this share of physical memory
HEADER_LIMIT = 1 << 16  # NRRD and MetaImage headers are text; bytes read to find where the voxel data starts


def check_image_file(path: Path, role: str) -> None:
    """Refuse a file whose header declares more voxels than the file can hold or this machine can work on, or whose
    compressed data is damaged or ends early. Raises RuntimeError (as reading does) for a header SimpleITK cannot
    read."""
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
    if head.startswith(GZIP_MAGIC):  # .nii.gz: the whole file is one gzip stream, header included
        header = int(float(reader.GetMetaData("vox_offset"))) if reader.HasMetaDataKey("vox_offset") else 0
        layout = (0, None, GZIP, header + declared)
    elif name.endswith(".nii") and reader.HasMetaDataKey("vox_offset"):
        layout = (int(float(reader.GetMetaData("vox_offset"))), None, 0, declared)
    elif name.endswith((".nrrd", ".nhdr")):
        layout = _nrrd_layout(head, declared)
    elif name.endswith((".mha", ".mhd")):
        layout = _metaimage_layout(head, declared)
    else:
        layout = None  # 2D formats read their own compressed data; the memory check above is what they get
    if layout is None:
        return
    offset, data_file, wbits, needed = layout
    if data_file is not None:  # a header with its voxel data in a file beside it
        path, offset = path.parent / data_file, 0
        if not path.is_file():
            return  # SimpleITK names the missing data file
    stored = path.stat().st_size - offset
    if wbits and needed > DEFLATE_MAX_RATIO * stored:
        raise BadInput(
            f"{what} {declaration} but holds only {_bytes(stored)} of compressed data, which cannot expand to that: "
            "its header is wrong or the file is truncated"
        )
    if wbits:
        stored = _unpacked_size(path, what, offset, wbits)
    if stored < needed:
        raise BadInput(
            f"{what} {declaration} but holds only {_bytes(max(stored, 0))} of voxel data"
            f"{' once uncompressed' if wbits else ''}: it is truncated (an interrupted copy or download?) or its "
            "header is wrong"
        )


def _unpacked_size(path: Path, what: str, offset: int, wbits: int) -> int:
    """Bytes of the compressed data from `offset` to the end of the file, read to the end of its stream (every member
    of a gzip file, each with its length and CRC checked) in blocks, holding none of it."""
    unpacked, ended = 0, False
    with open(path, "rb") as handle:
        handle.seek(offset)
        stream = zlib.decompressobj(wbits)
        try:
            for block in iter(lambda: handle.read(1 << 20), b""):
                while block:
                    unpacked += len(stream.decompress(block, 1 << 24))
                    block = stream.unconsumed_tail
                    if stream.eof:  # a gzip file may hold several members, one after the other
                        ended, block = True, stream.unused_data + block
                        stream = zlib.decompressobj(wbits)
                        ended = ended and not block
            if not ended:  # output held back by the block limit comes out now; the end may be in it
                unpacked += len(stream.flush())
                ended = stream.eof
        except zlib.error as error:
            raise BadInput(f"{what} is damaged: its compressed data is corrupt ({error})") from None
    if not ended:
        raise BadInput(
            f"{what} is damaged: its compressed data ends early, after {_bytes(unpacked)}: it is truncated "
            "(an interrupted copy or download?)"
        )
    return unpacked


def _nrrd_layout(head: bytes, declared: int):
    """(where the voxel data starts, its data file or None, zlib window bits or 0 for raw, bytes it must hold) of a
    NRRD header, or None for a layout not followed here (bzip2, text encodings, several data files)."""
    text = head.decode("latin-1")
    end = next((i for i in (text.find("\n\n"), text.find("\r\n\r\n")) if i >= 0), -1)
    fields = {}
    for line in text[: end if end >= 0 else len(text)].splitlines()[1:]:
        key, separator, value = line.partition(":")
        if separator and not line.startswith("#"):
            fields[key.strip().lower()] = value.strip().lstrip("=").strip()
    encoding = fields.get("encoding", "raw").lower()
    data_file = fields.get("data file", fields.get("datafile"))
    if encoding not in ("raw", "gzip", "gz") or (data_file and (" " in data_file or data_file == "LIST")):
        return None
    if data_file is None and end < 0:
        return None
    offset = end + (2 if text[end] == "\n" else 4) if end >= 0 else 0
    return offset, data_file, 0 if encoding == "raw" else GZIP, declared


def _metaimage_layout(head: bytes, declared: int):
    """(where the voxel data starts, its data file or None, zlib window bits or 0 for raw, bytes it must hold) of a
    MetaImage header, or None for a layout not followed here (lists or patterns of data files)."""
    fields, offset = {}, 0
    for line in head.decode("latin-1").splitlines(keepends=True):
        offset += len(line)
        key, _, value = line.partition("=")
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            break
    else:
        return None
    data_file = fields["elementdatafile"]
    wbits = ZLIB if fields.get("compresseddata", "false").lower() == "true" else 0
    if data_file.upper() == "LOCAL":
        return offset, None, wbits, declared
    if data_file.upper() == "LIST" or "%" in data_file or " " in data_file:
        return None
    return 0, data_file, wbits, declared


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
