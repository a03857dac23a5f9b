"""Phantom CT cases made on the spot: demo and test data that needs no download and holds no patient.

Each case is an abdomen-like cross-section extruded along z with varying shape: air around a body outline with a fat
rim, soft tissue, a vertebra (bone, unlabelled), an organ (label 1), one or two lesions inside it (label 2) and two
contrast-filled vessels (label 3): curved, 1-3 pixels wide at 64 px, wandering along z. The vessels are the thin
structure that a blurring generator loses first (a lesion blob survives blur). Intensities in Hounsfield units with
noise. Cases differ by seed.
"""

import numpy as np

from RaGANLib.seeds import stream

CLASS_NAMES = {"1": "organ", "2": "lesion", "3": "vessel"}
CLASS_COLORS = {"1": [0.85, 0.45, 0.3], "2": [0.95, 0.85, 0.2], "3": [0.3, 0.6, 1.0]}
SPACING = (1.6, 1.6, 3.0)  # x, y, z in mm
VESSELS = 2


def _ellipse(yy, xx, cy, cx, ry, rx, angle=0.0):
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def _vessel_shapes(seed: int, height: int, width: int) -> list[dict]:
    """Each vessel's path, width and contrast, from its own random stream (so the other structures of a seed stay as
    they were before vessels existed). Widths are in pixels of a 64-pixel slice, whatever the case's size."""
    rng = stream(seed, "phantom vessels")
    scale = width / 64
    return [
        {
            "angle": rng.uniform(0, np.pi),
            "cy": height * rng.uniform(0.38, 0.56),
            "cx": width * rng.uniform(0.35, 0.65),
            "half_length": width * rng.uniform(0.16, 0.28),
            "amplitude": height * rng.uniform(0.03, 0.08),
            "wavenumber": 2 * np.pi / (width * rng.uniform(0.3, 0.6)),
            "phase": rng.uniform(0, 2 * np.pi),
            "phase_drift": rng.uniform(-2, 2),  # over the whole depth: the bend changes from slice to slice
            "drift": (height * rng.uniform(-0.08, 0.08), width * rng.uniform(-0.08, 0.08)),
            "half_width": scale * rng.uniform(0.5, 1.5),  # 1-3 px wide at 64 px
            "hu": rng.uniform(200, 260),
        }
        for _ in range(VESSELS)
    ]


def _vessel(yy, xx, shape: dict, t: float):
    """The pixels of one vessel at relative depth t: a sine-bent line segment, its distance to each pixel taken to
    first order (the offset across the line over the slope's length), which holds while the bend is gentle."""
    cy, cx = shape["cy"] + shape["drift"][0] * (t - 0.5), shape["cx"] + shape["drift"][1] * (t - 0.5)
    c, s = np.cos(shape["angle"]), np.sin(shape["angle"])
    along = (xx - cx) * c + (yy - cy) * s
    across = -(xx - cx) * s + (yy - cy) * c
    k, phase = shape["wavenumber"], shape["phase"] + shape["phase_drift"] * t
    offset = across - shape["amplitude"] * np.sin(k * along + phase)
    slope = shape["amplitude"] * k * np.cos(k * along + phase)
    distance = np.abs(offset) / np.sqrt(1 + slope**2)
    return (distance <= shape["half_width"]) & (np.abs(along) <= shape["half_length"])


def make_case(seed: int, shape: tuple[int, int, int] = (20, 96, 96)) -> tuple[np.ndarray, np.ndarray]:
    """One phantom case as (image in HU as int16, label as uint8), arrays indexed [z, y, x]."""
    rng = np.random.default_rng(seed)
    depth, height, width = shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.full(shape, -1000.0, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)

    body_ry, body_rx = height * rng.uniform(0.30, 0.36), width * rng.uniform(0.40, 0.46)
    organ_cy, organ_cx = height * rng.uniform(0.42, 0.5), width * rng.uniform(0.33, 0.42)
    organ_ry, organ_rx, organ_angle = (
        height * rng.uniform(0.12, 0.16),
        width * rng.uniform(0.13, 0.18),
        rng.uniform(-0.6, 0.6),
    )
    lesions = [
        (rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.3, 0.5), rng.uniform(0.25, 0.75))
        for _ in range(rng.integers(1, 3))
    ]
    organ_hu, lesion_hu = rng.uniform(110, 140), rng.uniform(0, 30)
    vessels = _vessel_shapes(seed, height, width)

    for z in range(depth):
        t = z / max(1, depth - 1)
        taper = 1.0 - 0.25 * (t - 0.5) ** 2  # the body narrows towards both ends
        cy, cx = height * 0.5, width * 0.5
        body = _ellipse(yy, xx, cy, cx, body_ry * taper, body_rx * taper)
        inner = _ellipse(yy, xx, cy, cx, body_ry * taper - 4, body_rx * taper - 4)
        image[z][body] = -100.0  # subcutaneous fat
        image[z][inner] = 40.0  # soft tissue
        spine = _ellipse(yy, xx, cy + body_ry * taper * 0.62, cx, height * 0.06, width * 0.05)
        image[z][spine] = 450.0
        organ_scale = np.sin(np.pi * (0.15 + 0.7 * t))  # the organ grows and shrinks along z
        organ = _ellipse(yy, xx, organ_cy, organ_cx, organ_ry * organ_scale, organ_rx * organ_scale, organ_angle)
        organ &= inner
        image[z][organ] = organ_hu
        label[z][organ] = 1
        for vessel in vessels:
            inside = _vessel(yy, xx, vessel, t) & inner & ~spine
            image[z][inside] = vessel["hu"]
            label[z][inside] = 3
        for dy, dx, radius, z_centre in lesions:
            r = radius * organ_ry * max(0.0, 1 - ((t - z_centre) / 0.3) ** 2) ** 0.5
            if r < 1.5:
                continue
            lesion = _ellipse(yy, xx, organ_cy + dy * organ_ry, organ_cx + dx * organ_rx, r, r) & organ
            image[z][lesion] = lesion_hu
            label[z][lesion] = 2

    # Partial-volume blur across the in-plane neighbours, then scanner noise.
    blurred = image.copy()
    for axis in (1, 2):
        blurred += np.roll(image, 1, axis) + np.roll(image, -1, axis)
    image = blurred / 5.0 + rng.normal(0, 12, size=shape)
    return np.clip(np.round(image), -1024, 3071).astype(np.int16), label


def write_dataset(folder, cases: int = 6, shape: tuple[int, int, int] = (20, 96, 96), seed: int = 0):
    """Write `cases` phantom cases as an nnU-Net v2 raw dataset folder and return its path. Case i of dataset `seed`
    is make_case(seed * 1000 + i): the numbers name the cases (data, as the benchmarks' case sets are), not a random
    stream, so they stay outside RaGANLib/seeds.py."""
    import SimpleITK as sitk

    from RaGANLib.data.nnunet import DatasetWriter

    writer = DatasetWriter(folder, channel_name="CT", class_names=["background", *CLASS_NAMES.values()])
    for number in range(cases):
        image, label = make_case(seed * 1000 + number, shape)
        volumes = [sitk.GetImageFromArray(image), sitk.GetImageFromArray(label)]
        for volume in volumes:
            volume.SetSpacing(SPACING)
        writer.add_case(f"phantom_{number:03d}", *volumes)
    return writer.finish()
