"""Keeping the best model: GAN training oscillates, so the last step may not be the best one. With `--score-every N`
(off by default) the EMA generator draws a fixed sample every N steps, scored against the training slices with the
own-feature Frechet distance of `ragan evaluate` (lower is closer to real); the weights of the best-scoring step
become the run's model/ at the end. Off by default because on the phantom arm this score rose while the slices got
sharper and trained a segmentation network better (docs/conditional-vs-joint-phantom.md, "Which step to keep").

<run>/best.npz   the best step's EMA generator weights (ema/0000, ...), its `step` and `frechet`; written atomically at
                 every new best, so a killed run keeps it
Checkpoints carry the same (best/step, best/frechet, best_ema/0000, ...), so a resumed run goes on with the best of
the run it continues, and best.npz is rewritten from the checkpoint it resumes (a best found after that checkpoint
belongs to training that is done again).
"""

import io
import math

import numpy as np

from RaGANLib.seeds import stream
from RaGANLib.training.runfolder import write_bytes_atomic

SCORE_SLICES = 256  # synthetic slices scored, and training slices at most in the reference: ~1-3 s at 64-128 px


class BestModel:
    """The scoring sample and reference of a run, and the best step found so far (None before the first score)."""

    def __init__(self, spec, data, latent_size: int):
        from RaGANLib.quality.features import slice_features
        from RaGANLib.results.layouts import moved_layouts

        self.every, self.classes, self.latent_size = spec.score_every, len(data.classes), latent_size
        self.step, self.frechet, self.weights = None, math.inf, None
        if not self.every:
            return
        rng = stream(spec.seed, "scoring")
        chosen = np.sort(rng.permutation(len(data.labels))[:SCORE_SLICES])
        images, labels = np.asarray(data.images[chosen], dtype=np.float32), np.asarray(data.labels[chosen])
        self.reference, _ = slice_features(images, labels, self.classes)
        self.latent_seed = int(rng.integers(2**31))
        # A conditional generator paints the same moved training labels at every score.
        layouts = moved_layouts(data.labels, rng) if spec.mode == "conditional" else None
        self.layouts = None if layouts is None else np.stack([next(layouts) for _ in range(SCORE_SLICES)])

    def due(self, step: int, last: int) -> bool:
        """Score at every multiple of `every`, and at the last step when there is an earlier score to compare with."""
        return bool(self.every) and (step % self.every == 0 or (step == last and self.step is not None))

    def score(self, generator) -> float:
        """The own-feature Frechet distance of the generator's fixed sample to the training slices."""
        from RaGANLib.quality.features import slice_features
        from RaGANLib.quality.metrics import frechet_distance, standardise
        from RaGANLib.results.synthetic import sample

        layouts = None if self.layouts is None else iter(self.layouts)
        images, labels = sample(generator, SCORE_SLICES, self.latent_seed, self.latent_size, layouts)
        if not np.all(np.isfinite(images)):  # weights gone bad: the checkpoint that follows says so
            return math.nan
        features, _ = slice_features(images, labels, self.classes)
        return frechet_distance(*standardise(self.reference, features))

    def update(self, step: int, frechet: float, generator, run) -> None:
        """Keep `generator`'s weights, and write best.npz, when `frechet` beats the best so far."""
        if frechet < self.frechet:  # NaN never wins
            self.step, self.frechet = step, frechet
            self.weights = [np.array(w) for w in generator.get_weights()]
            self.write(run)

    def write(self, run) -> None:
        """best.npz from the best so far; removed when there is none (a resumed run has not found one yet). `run` is
        None for a worker of several hosts other than the chief: it keeps the best in memory and writes nothing."""
        if run is None:
            return
        path = run.best
        if self.step is None:
            path.unlink(missing_ok=True)
            return
        arrays = {"step": np.array(self.step, dtype=np.int64), "frechet": np.array(self.frechet)}
        arrays |= {f"ema/{index:04d}": w for index, w in enumerate(self.weights)}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_bytes_atomic(path, buffer.getvalue())

    def checkpoint_arrays(self) -> dict:
        if self.step is None:
            return {}
        arrays = {"best/step": np.array(self.step, dtype=np.int64), "best/frechet": np.array(self.frechet)}
        return arrays | {f"best_ema/{index:04d}": w for index, w in enumerate(self.weights)}

    @staticmethod
    def read_checkpoint(arrays: dict, generator) -> tuple:
        """(step, frechet, weights) kept in a checkpoint's arrays, or (None, inf, None) when it has none; ValueError
        when they do not fit `generator`."""
        if "best/step" not in arrays:
            return None, math.inf, None
        shapes = [tuple(w.shape) for w in generator.weights]
        weights = [arrays.get(f"best_ema/{index:04d}") for index in range(len(shapes))]
        if any(w is None or w.shape != shape for w, shape in zip(weights, shapes)) or (
            f"best_ema/{len(shapes):04d}" in arrays
        ):
            raise ValueError("its best generator weights do not fit this model")
        return int(arrays["best/step"]), float(arrays["best/frechet"]), weights

    def restore(self, kept: tuple, run) -> None:
        self.step, self.frechet, self.weights = kept
        self.write(run)

    def select(self, generator, last: int) -> dict:
        """Load the best weights into `generator` when scoring is on and found one; returns model.json's `selection`:
        the step the model holds, its score (None: not scored) and the scoring interval."""
        if self.every and self.step is not None:
            generator.set_weights(self.weights)
            return {"step": self.step, "frechet": round(self.frechet, 4), "score_every": self.every, "last_step": last}
        return {"step": last, "frechet": None, "score_every": self.every, "last_step": last}
