"""Peak memory of preparing one synthetic CT: `python Testing/prepare_peak_memory.py [SLICES ROWS COLUMNS] [--size N]`.

Writes an int16 CT volume of the given shape (default 300x512x512) with a label on a few slices, prepares it in a
fresh subprocess and prints that process's peak resident memory (VmHWM, Linux) in MB, and the peak of a process that
only imports the same modules, so the difference is what preparing costs."""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPOSITORY = Path(__file__).resolve().parents[1]
PREPARE = """
import sys
from pathlib import Path
from RaGANLib.events import Reporter
from RaGANLib.data.prepare import prepare
from RaGANLib.spec import TrainSpec
if sys.argv[1] == "prepare":
    spec = TrainSpec(pairs=[[sys.argv[2], sys.argv[3]]], size=int(sys.argv[4]))
    prepare(spec, Path(sys.argv[5]), Reporter(stream=open("/dev/null", "w")))
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def write_ct(folder: Path, shape: tuple[int, int, int]) -> tuple[Path, Path]:
    """A body-like int16 CT (air, soft tissue, noise) and a label on the middle ten slices."""
    slices, rows, columns = shape
    rng = np.random.default_rng(0)
    y, x = np.ogrid[:rows, :columns]
    body = ((y - rows / 2) / (rows * 0.4)) ** 2 + ((x - columns / 2) / (columns * 0.45)) ** 2 < 1
    image = np.full(shape, -1000, dtype=np.int16)
    image[:, body] = 40
    image += rng.integers(-20, 20, size=shape, dtype=np.int16)
    label = np.zeros(shape, dtype=np.uint8)
    middle = slices // 2
    organ = ((y - rows / 2) / (rows * 0.1)) ** 2 + ((x - columns / 2) / (columns * 0.1)) ** 2 < 1
    label[max(0, middle - 5) : middle + 5, organ] = 1
    paths = folder / "ct.nrrd", folder / "ct_label.nrrd"
    for array, path in zip((image, label), paths):
        volume = sitk.GetImageFromArray(array)
        volume.SetSpacing((0.8, 0.8, 1.5))
        sitk.WriteImage(volume, str(path))
    return paths


def peak_mb(*arguments: str) -> float:
    """Peak resident memory of `python -c PREPARE ARGUMENTS` in MB, as the process measured itself after exec."""
    command = [sys.executable, "-c", PREPARE, *arguments]
    result = subprocess.run(command, check=True, cwd=REPOSITORY, capture_output=True)
    return int(result.stdout.split()[-1]) / 1024  # kB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("shape", nargs="*", type=int, default=[300, 512, 512])
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        image, label = write_ct(Path(folder), tuple(args.shape))
        baseline = peak_mb("import")
        prepared = peak_mb("prepare", str(image), str(label), str(args.size), str(Path(folder) / "cache"))
    print(f"peak RSS preparing {'x'.join(map(str, args.shape))} int16 at --size {args.size}: {prepared:.0f} MB")
    print(f"peak RSS of the imports alone: {baseline:.0f} MB")


if __name__ == "__main__":
    main()
