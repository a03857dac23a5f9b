"""The model folder: the trained generator and what is needed to use it, self-contained and free of patient data.

    model/generator.keras   the EMA generator in Keras' native format (standard layers only: loads with safe_mode)
    model/model.json        classes (names, original label values, colours), intensity mapping and its inverse,
                            slice size, spacing and axis, modality, mode, network width, training data counts and
                            content hashes, versions
    model/labels.npz        conditional models only: the training label slices (class indices, uint8, compressed), the
                            layouts `generate --count` moves and paints; no image intensities, no paths, no names

Nothing in it comes from input headers or file names: the hashes identify the training files without naming them.
"""

import io
import platform
from pathlib import Path

import numpy as np

from RaGANLib import __version__
from RaGANLib.data.prepare import PreparedData
from RaGANLib.errors import BadInput
from RaGANLib.model.model_info import MODEL_JSON, ModelInfo, check_keras, read_model_info, write_model_info
from RaGANLib.results import outputs
from RaGANLib.training.runfolder import write_bytes_atomic


def model_description(data: PreparedData, spec, step: int) -> ModelInfo:
    """The model.json of a generator trained by `spec` for `step` steps on the prepared slices `data`."""
    import keras
    import tensorflow as tf

    from RaGANLib.model.networks import LATENT_SIZE

    return ModelInfo(
        classes=data.label_classes,
        modality=data.modality,
        intensity=data.normalisation,
        grid=data.grid,
        training=data.training_data(spec, step),
        versions={
            "ragan": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
        mode=spec.mode,
        width=spec.width,
        arch=spec.arch,
        latent_size=LATENT_SIZE,
        labels="labels.npz" if spec.mode == "conditional" else None,
        body=spec.body,
    )


MODEL_FILES = ("generator.keras", "model.json", "labels.npz")  # all that RaGAN writes into a model folder


def export(generator, description: ModelInfo | dict, folder: Path, labels: np.ndarray | None = None) -> Path:
    """Write the model folder so that it appears whole or not at all. An earlier model folder there is replaced
    only when it holds nothing but RaGAN's model files (see RaGANLib.results.outputs). `labels`: the training label
    slices (class indices), kept for a conditional model only. A `description` given as parsed JSON is checked first."""
    folder = Path(folder)
    if isinstance(description, dict):
        description = ModelInfo.from_json(description, f"the description of model '{folder}'")
    outputs.check_contents(folder, MODEL_FILES)
    with outputs.staged(folder, "new") as staging:
        generator.save(staging / "generator.keras")
        if description.conditional:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, labels=np.asarray(labels, dtype=np.uint8))
            write_bytes_atomic(staging / description.labels, buffer.getvalue())
        write_model_info(staging, description)
        outputs.replace(staging, folder)
    return folder


def load(folder: Path):
    """The generator (loaded with safe_mode=True) and the checked model.json of a model folder."""
    folder = Path(folder)
    description = read_model_info(folder)  # before TensorFlow starts: a bad model.json is refused in a moment
    import keras

    import RaGANLib.model.networks  # noqa: F401  registers the generator's own layers (border padding, pixel noise)
    from RaGANLib.model.networks import GeneratorContract

    where = f"'{folder / MODEL_JSON}'"
    check_keras(description, keras.__version__, where)
    path = folder / description.generator
    if not path.is_file():
        raise BadInput(f"model folder '{folder}' has no {path.name} (field generator of model.json)")
    try:
        generator = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged or foreign file
        raise BadInput(f"'{path}' cannot be loaded as a Keras model: {error}") from None
    size, classes, conditional = description.grid.size, description.condition_classes, description.conditional
    contract = GeneratorContract(description.mode, size, classes)
    body = " and the body outline" if description.body else ""
    takes = generator.input_shape if isinstance(generator.input_shape, list) else [generator.input_shape]
    if conditional != (len(takes) == 2):
        raise BadInput(
            f"{where}: field mode ({description.mode}) does not fit {path.name}, which takes "
            f"{len(takes)} input(s) (a conditional generator takes a label map and a latent vector)"
        )
    if conditional and tuple(takes[0][1:]) != contract.inputs[0]:
        raise BadInput(
            f"{where}: fields classes ({len(description.classes)} classes{body}) and slice.size ({size}) do not fit "
            f"{path.name}, which paints images for label maps of {takes[0][1:]}"
        )
    latent, made = tuple(takes[-1][1:]), tuple(generator.output_shape[1:])
    if latent != (description.latent_size,):
        raise BadInput(
            f"{where}: field latent_size ({description.latent_size}) does not fit {path.name}, "
            f"which takes latent vectors of {latent[-1]}"
        )
    if made != contract.output:
        raise BadInput(
            f"{where}: fields classes ({classes} classes) and slice.size ({size}) do not fit {path.name}, "
            f"which makes {made[0]}x{made[1]} slices with {made[-1] - 1} classes"
        )
    return generator, description


def training_labels(folder: Path, description: ModelInfo) -> np.ndarray:
    """The training label slices of a conditional model folder ([n, size, size] class indices), checked."""
    path = Path(folder) / description.labels
    size, classes = description.grid.size, description.condition_classes
    try:
        with np.load(path, allow_pickle=False) as stored:
            labels = stored["labels"]
    except Exception as error:  # missing, not a zip, no such array, damaged: numpy raises many types
        raise BadInput(f"'{path}' (field labels of model.json) cannot be read: {error}") from None
    if labels.dtype != np.uint8 or labels.ndim != 3 or labels.shape[1:] != (size, size) or not len(labels):
        raise BadInput(f"'{path}' holds {labels.dtype} {labels.shape}, not label slices of {size}x{size}")
    if labels.max() >= classes:
        raise BadInput(f"'{path}' holds class {labels.max()}, but model.json has {classes} condition classes")
    return labels
