"""Where training runs: the GAN training loop over a run folder, with checkpoints, resume, stop and reporting.

    result = train(spec, Path("runs/liver"), Reporter(json_lines=True))          # a new run
    result = train(None, Path("runs/liver"), Reporter(), resume=True)            # continue it after a stop or crash

Losses: non-saturating logistic GAN loss, R1 penalty on (augmented) real pairs every few steps, differentiable
augmentation of both real and synthetic pairs (a fixed probability, or adapted while training: RaGANLib/augment.py),
an exponential moving average (EMA) of the generator for sampling; every `--score-every` steps the EMA generator is
scored and the best-scoring step's weights become the model (RaGANLib/best_model.py).
All randomness comes from (seed, step): a resumed run draws the same batches it would have drawn.

Modes (spec.mode): joint, the generator makes the image and its label; conditional, the generator makes an image
for a label layout (a batch's real labels, moved: RaGANLib.layouts) and the synthetic pair is (that image, that
layout). Only `_fake_pair`, the batches and the preview differ; the loop, losses and checkpoints are shared.
"""

import contextlib
import dataclasses
import hashlib
import io
import os
import signal
import tempfile
import time
from pathlib import Path

import numpy as np

from RaGANLib import model_folder, outputs, preview
from RaGANLib.best_model import BestModel
from RaGANLib.errors import BadInput, Diverged, OutOfMemory
from RaGANLib.events import Reporter
from RaGANLib.generate import preview_picture, sample, to_source, write_volumes
from RaGANLib.layouts import move_label
from RaGANLib.prepare import PreparationStopped, PreparedData, load_cache, survey, write_cache
from RaGANLib.runfolder import STOP_SIGNALS, RunFolder, block_stop_signals, write_bytes_atomic
from RaGANLib.seeds import offset_seed, stream
from RaGANLib.spec import TrainSpec, default_width

R1_INTERVAL = 4  # lazy R1: every few steps, scaled up to match
PREVIEW_COUNT = 16
FORCE_MIXED_PRECISION = "RAGAN_FORCE_MIXED_PRECISION"  # set (to anything): --mixed-precision also without a GPU


def describe_device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return ", ".join(names)


def several_hosts(spec: TrainSpec) -> bool:
    """--multi-gpu with TF_CONFIG set (the cluster and this process's task in it, as Kubernetes and Slurm launchers
    set it): every host runs the same command on the same run folder, MultiWorkerMirroredStrategy joins them."""
    return spec.multi_gpu and bool(os.environ.get("TF_CONFIG"))


def with_width(spec: TrainSpec) -> TrainSpec:
    """The spec with its network width fixed: --width's, or the default for this device (spec.default_width)."""
    import tensorflow as tf

    if spec.width is not None:
        return spec
    return dataclasses.replace(spec, width=default_width(spec.size, bool(tf.config.list_physical_devices("GPU"))))


def choose_strategy(spec: TrainSpec, reporter: Reporter):
    import tensorflow as tf

    if several_hosts(spec):
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if spec.multi_gpu:
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        reporter.notice(f"multi-GPU training asked for, but {len(gpus)} GPU(s) found: training on one device")
    return tf.distribute.get_strategy()


def class_intensity_gap(fake, images, labels, classes: int):
    """How far each class's intensity in a synthetic batch is from the real batch's: the sum over classes present in
    both of |mean difference| + |standard deviation difference|. `fake` holds images and one-hot labels
    ([batch, size, size, 1 + classes]); `images` and `labels` are the real batch ([batch, size, size], class indices).
    It asks for organs as much brighter or darker than the body as in the real slices, and as noisy, which the
    discriminator's single realness score teaches slowly from 5 cases; batch statistics leave single slices free."""
    import tensorflow as tf

    def moments(image, one_hot):
        count = tf.reduce_sum(one_hot, axis=[0, 1, 2])
        mean = tf.reduce_sum(image * one_hot, axis=[0, 1, 2]) / tf.maximum(count, 1.0)
        square = tf.reduce_sum(tf.square(image) * one_hot, axis=[0, 1, 2]) / tf.maximum(count, 1.0)
        return mean, tf.sqrt(tf.maximum(square - tf.square(mean), 0.0) + 1e-6), count > 0

    real_one_hot = tf.one_hot(tf.cast(labels, tf.int32), classes)
    fake_mean, fake_sd, fake_has = moments(tf.cast(fake[..., :1], "float32"), tf.cast(fake[..., 1:], "float32"))
    real_mean, real_sd, real_has = moments(images[..., None], real_one_hot)
    both = tf.cast(fake_has & real_has, "float32")
    return tf.reduce_sum(both * (tf.abs(fake_mean - real_mean) + tf.abs(fake_sd - real_sd)))


class GanTrainer:
    """Networks, optimisers and the compiled train step of one run."""

    def __init__(self, spec: TrainSpec, data: PreparedData, strategy, reporter: Reporter):
        import keras
        import tensorflow as tf

        from RaGANLib.networks import LATENT_SIZE, build_discriminator, build_generator

        spec = with_width(spec)
        self.spec, self.strategy = spec, strategy
        self.classes = len(data.classes)
        self.latent_size = LATENT_SIZE
        width = spec.width
        keras.utils.set_random_seed(spec.seed)

        # Construct networks. float16 compute pays on GPUs only; FORCE_MIXED_PRECISION runs the same path on a CPU
        # (slower there than float32), so that tests and the GPU check script exercise it on machines without a GPU.
        mixed = spec.mixed_precision and (
            tf.config.list_physical_devices("GPU") or os.environ.get(FORCE_MIXED_PRECISION)
        )
        if spec.mixed_precision and not mixed:
            reporter.notice("mixed precision needs a GPU; training in float32")
        with strategy.scope():
            keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
            shape = dict(
                mode=spec.mode,
                smooth_labels=spec.smooth_labels,
                border_padding=spec.border_padding,
                pixel_noise=spec.pixel_noise,
            )
            self.generator = build_generator(spec.arch, spec.size, self.classes, width, **shape)
            self.discriminator = build_discriminator(spec.arch, spec.size, self.classes, width)
            keras.mixed_precision.set_global_policy("float32")
            self.ema = build_generator(spec.arch, spec.size, self.classes, width, "generator_ema", **shape)
            self.ema.set_weights(self.generator.get_weights())
            self.g_optimizer = keras.optimizers.Adam(spec.lr, beta_1=0.0, beta_2=0.99)
            self.d_optimizer = keras.optimizers.Adam(spec.lr, beta_1=0.0, beta_2=0.99)
            if mixed:
                self.g_optimizer = keras.optimizers.LossScaleOptimizer(self.g_optimizer)
                self.d_optimizer = keras.optimizers.LossScaleOptimizer(self.d_optimizer)
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            # Augmentation probability (ADA adjusts it from 0; otherwise --augment's) and ADA's running sums (signs of
            # real scores, images seen): variables, so the compiled step reads them without retracing and every
            # checkpoint keeps them.
            self.adaptive = spec.augment == "ada"
            self.augment_p = tf.Variable(
                0.0 if self.adaptive else float(spec.augment), trainable=False, name="augment_p"
            )
            self.ada_sums = tf.Variable([0.0, 0.0], trainable=False, name="ada_sums")
        self.best = BestModel(spec, data, self.latent_size)
        self._last_r1 = 0.0
        self._steps = {r1: tf.function(self._distributed_step(r1), jit_compile=spec.xla) for r1 in (False, True)}

    # Train.
    def _replica_step(self, images, labels, latents, seed, layouts=None, with_r1: bool = False):
        import tensorflow as tf

        from RaGANLib.augment import augment_pairs

        spec = self.spec
        global_batch = float(spec.batch)
        real = tf.concat([images[..., None], tf.one_hot(tf.cast(labels, tf.int32), self.classes)], axis=-1)
        seeds = tf.random.experimental.stateless_split(seed, num=3)
        p = self.augment_p if self.adaptive else spec.augment  # a fixed 0 skips augmentation altogether

        with tf.GradientTape() as tape:
            fake = self._fake_pair(latents[0], layouts)
            real_augmented = augment_pairs(real, p, seeds[0])
            fake_augmented = augment_pairs(fake, p, seeds[1])
            if with_r1:
                with tf.GradientTape() as r1_tape:
                    r1_tape.watch(real_augmented)
                    real_score = self.discriminator(real_augmented, training=True)
                    real_total = tf.reduce_sum(real_score)
                gradient = r1_tape.gradient(real_total, real_augmented)
                r1 = tf.reduce_sum(tf.square(gradient), axis=[1, 2, 3])
            else:
                real_score = self.discriminator(real_augmented, training=True)
                r1 = tf.zeros([tf.shape(real)[0]])
            fake_score = self.discriminator(fake_augmented, training=True)
            d_adversarial = tf.nn.softplus(fake_score[:, 0]) + tf.nn.softplus(-real_score[:, 0])
            d_loss = tf.reduce_sum(d_adversarial + spec.r1_gamma / 2 * R1_INTERVAL * r1) / global_batch
            scaled = self.d_optimizer.scale_loss(d_loss)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply(tape.gradient(scaled, variables), variables)

        with tf.GradientTape() as tape:
            fake = self._fake_pair(latents[1], layouts)
            score = self.discriminator(augment_pairs(fake, p, seeds[2]), training=True)
            g_loss = tf.reduce_sum(tf.nn.softplus(-score[:, 0])) / global_batch
            if spec.class_intensity and layouts is not None:
                share = tf.cast(tf.shape(images)[0], "float32") / global_batch  # the replicas' terms sum to one mean
                g_loss += spec.class_intensity * share * class_intensity_gap(fake, images, labels, self.classes)
            scaled = self.g_optimizer.scale_loss(g_loss)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(scaled, variables), variables)
        return {
            "d_loss": tf.reduce_sum(d_adversarial) / global_batch,
            "g_loss": g_loss,
            "r1": tf.reduce_sum(r1) / global_batch,
            "real_score": tf.reduce_sum(real_score) / global_batch,
            "fake_score": tf.reduce_sum(fake_score) / global_batch,
            "real_sign": tf.reduce_sum(tf.sign(real_score[:, 0])) / global_batch,  # ADA's overfitting signal
        }

    def _fake_pair(self, latents, layouts):
        """A batch of synthetic (image, one-hot label) pairs: joint, both from the generator; conditional, the
        generator's image for the given layouts (class indices) beside them."""
        import tensorflow as tf

        from RaGANLib.augment import harden

        if layouts is None:  # labels one-hot (straight-through): the discriminator cannot tell them by softness
            pair = self.generator(latents, training=True)
            return tf.concat([pair[..., :1], harden(pair[..., 1:])], axis=-1)
        label = tf.one_hot(tf.cast(layouts, tf.int32), self.classes)
        return tf.concat([self.generator([label, latents], training=True), label], axis=-1)

    def _distributed_step(self, with_r1: bool):
        import tensorflow as tf

        from RaGANLib.augment import ada_adjust

        def step(batch, ema_beta):
            results = self.strategy.run(self._replica_step, args=batch, kwargs={"with_r1": with_r1})
            results = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in results.items()}
            self._update_ema(ema_beta)
            if self.adaptive:
                images = float(self.spec.batch)
                sign_sum = self.ada_sums[0] + results["real_sign"] * images
                p, sign_sum, seen = ada_adjust(self.augment_p, sign_sum, self.ada_sums[1] + images)
                self.augment_p.assign(p)
                self.ada_sums.assign(tf.stack([sign_sum, seen]))
            return results

        return step

    def _update_ema(self, beta) -> None:
        import tensorflow as tf

        for average, current in zip(self.ema.weights, self.generator.weights):
            average.assign(beta * average + (1 - beta) * tf.cast(current, average.dtype))

    def step(self, batch, step: int) -> dict:
        # The EMA starts short and grows to its half-life, so early previews already show something.
        beta = min(0.5 ** (1 / self.spec.ema_halflife), (1 + step) / (10 + step))
        with_r1 = step % R1_INTERVAL == 0
        results = self._steps[with_r1](batch, np.float32(beta))
        if with_r1:
            self._last_r1 = results["r1"]
        return {**results, "r1": self._last_r1}  # the penalty of the latest step that computed it

    def dataset(self, data: PreparedData, start: int):
        """Batches for steps start.. as (images, labels, latents, seed[, layouts]), drawn from (seed, step, replica);
        layouts (the conditional generator's labels: the batch's labels, moved) are drawn last."""
        import tensorflow as tf

        spec, latent_size = self.spec, self.latent_size
        images, labels = data.images, data.labels
        size, conditional = spec.size, spec.mode == "conditional"
        weights = self.slice_weights(labels, self.classes, spec.class_balance) if spec.class_balance else None
        replace = (len(images) if weights is None else np.count_nonzero(weights)) < spec.batch

        def make(context: tf.distribute.InputContext):
            batch = context.get_per_replica_batch_size(spec.batch)
            pipeline = context.input_pipeline_id
            local_replicas = context.num_replicas_in_sync // context.num_input_pipelines

            def batches():  # each step takes one element per local replica
                for step in range(start, spec.steps):
                    for replica in range(local_replicas):
                        rng = stream(spec.seed, "batches", step, pipeline, replica)
                        chosen = np.sort(rng.choice(len(images), size=batch, replace=replace, p=weights))
                        drawn = (
                            images[chosen].astype(np.float32),
                            labels[chosen],
                            rng.standard_normal((2, batch, latent_size)).astype(np.float32),
                            rng.integers(0, 2**31 - 1, size=2, dtype=np.int64),
                        )
                        yield (*drawn, np.stack([move_label(labels[i], rng) for i in chosen])) if conditional else drawn

            signature = (
                tf.TensorSpec((batch, size, size), tf.float32),
                tf.TensorSpec((batch, size, size), tf.uint8),
                tf.TensorSpec((2, batch, latent_size), tf.float32),
                tf.TensorSpec((2,), tf.int64),
            ) + ((tf.TensorSpec((batch, size, size), tf.uint8),) if conditional else ())
            return tf.data.Dataset.from_generator(batches, output_signature=signature).prefetch(2)

        return iter(self.strategy.distribute_datasets_from_function(make))

    @staticmethod
    def slice_weights(labels, classes: int, balance: float) -> np.ndarray:
        """Each slice's chance to be drawn: `1 - balance` of the draws pick a slice uniformly, `balance` pick one of
        the foreground classes (each equally often) and then a slice that holds it. Every class present in the
        training set then appears in a drawn slice with a chance of at least balance / classes, however few slices
        hold it: a rare lesion or a thin vessel is in the batches, not only in the data."""
        presence = np.zeros((len(labels), classes), dtype=bool)
        for start in range(0, len(labels), 256):  # a block at a time: the label cache may be larger than memory
            block = np.asarray(labels[start : start + 256]).reshape(min(256, len(labels) - start), -1)
            for index in range(1, classes):
                presence[start : start + len(block), index] = (block == index).any(axis=1)
        holding = presence.sum(axis=0)
        present = np.flatnonzero(holding)
        weights = np.full(len(labels), (1 - balance) / len(labels))
        if len(present):
            weights += balance / len(present) * (presence[:, present] / holding[present]).sum(axis=1)
        else:  # nothing but background: uniform
            weights += balance / len(labels)
        return weights / weights.sum()

    # Checkpoints.
    def _groups(self):
        return {
            "generator": self.generator.weights,
            "discriminator": self.discriminator.weights,
            "ema": self.ema.weights,
            "g_optimizer": self.g_optimizer.variables,
            "d_optimizer": self.d_optimizer.variables,
            "augment": [self.augment_p, self.ada_sums],
        }

    def save_checkpoint(self, run: RunFolder, step: int) -> Path:
        """Write the state of `step` (never from weights that are no longer finite), with a SHA-256 of its arrays."""
        arrays = {"step": np.array(step, dtype=np.int64)}
        for group, variables in self._groups().items():
            for index, variable in enumerate(variables):
                arrays[f"{group}/{index:04d}"] = np.asarray(variable.numpy())
        arrays |= self.best.checkpoint_arrays()
        broken = sorted({key.split("/")[0] for key, a in arrays.items() if not np.all(np.isfinite(a))})
        if broken:
            raise Diverged(
                f"training diverged at step {step}: the {' and '.join(broken)} weights are no longer finite numbers; "
                f"nothing from this step on was saved. {self._last_good(run)}"
            )
        arrays["sha256"] = np.array(checkpoint_digest(arrays))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        path = run.checkpoint_path(step)
        write_bytes_atomic(path, buffer.getvalue())
        run.prune_checkpoints(self.spec.keep_checkpoints)
        return path

    @staticmethod
    def _last_good(run: RunFolder) -> str:
        found = run.list_checkpoints()
        kept = f"The newest checkpoint, '{found[0][1].name}', is kept" if found else "No checkpoint was written yet"
        return f"{kept}; the learning rate (--lr) is probably too high: start a new run with a smaller one"

    def check_losses(self, losses: dict, step: int, run: RunFolder) -> None:
        """Stop (Diverged) when a loss is NaN or infinite: what follows would train and save garbage."""
        broken = {name: float(value) for name, value in losses.items() if not np.isfinite(float(value))}
        if broken:
            described = ", ".join(f"{name} is {value}" for name, value in broken.items())
            raise Diverged(
                f"training diverged at step {step}: {described}; nothing from this step on was saved. "
                + self._last_good(run)
            )

    def load_checkpoint(self, run: RunFolder, reporter: Reporter, set_aside: bool = True) -> int:
        """Restore the newest readable checkpoint whose checksum and shapes hold; returns its step (0 when none).
        Any failure to read or check one (truncated, empty, overwritten, bit rot) falls back to the next older, which
        is renamed aside if `set_aside` (not by the workers of several hosts that do not own the run folder)."""
        for step, path in run.list_checkpoints():
            try:
                with np.load(path, allow_pickle=False) as stored:
                    arrays = {key: stored[key] for key in stored.files}
                if "sha256" not in arrays:  # written by RaGAN 0.1, before checkpoints carried one
                    reporter.notice(f"checkpoint '{path.name}' has no checksum (an earlier RaGAN wrote it)")
                elif str(arrays.pop("sha256")) != checkpoint_digest(arrays):
                    raise ValueError("its contents do not match its SHA-256: damaged on disk")
                if int(arrays["step"]) != step:
                    raise ValueError(f"it holds step {int(arrays['step'])}")
                groups = self._groups()
                if "augment/0000" not in arrays:  # written before the augmentation state was kept
                    del groups["augment"]
                    if self.adaptive:
                        reporter.notice(f"checkpoint '{path.name}' has no augmentation state: p starts from 0")
                for group, variables in groups.items():
                    for index, variable in enumerate(variables):
                        if arrays[f"{group}/{index:04d}"].shape != tuple(variable.shape):
                            raise ValueError(f"{group} variable {index} has another shape")
                    if f"{group}/{len(variables):04d}" in arrays:
                        raise ValueError(f"{group} has more variables than this model")
                best = self.best.read_checkpoint(arrays, self.ema)
            except Exception as error:  # zip, npy and checksum failures have many types; all mean "do not use"
                aside = path.with_name(path.name + ".damaged")  # kept for a look, but no longer counted or tried
                with contextlib.suppress(OSError):
                    if set_aside:
                        path.replace(aside)
                reporter.notice(
                    f"checkpoint '{path.name}' cannot be used ({type(error).__name__}: {error}); kept as "
                    f"'{aside.name}'; trying an older one"
                )
                continue
            for group, variables in groups.items():
                for index, variable in enumerate(variables):
                    variable.assign(arrays[f"{group}/{index:04d}"])
            if not self.adaptive:  # a fixed --augment given on resume applies from here on
                self.augment_p.assign(float(self.spec.augment))
            self.best.restore(best, run if set_aside else None)
            return step
        return 0


def checkpoint_digest(arrays: dict) -> str:
    """SHA-256 over the names, types, shapes and bytes of a checkpoint's arrays, in name order."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _open_run(spec: TrainSpec | None, run: RunFolder, resume: bool) -> TrainSpec:
    """The spec to run with, after checking that the run folder fits the request."""
    if resume:
        if not run.spec.exists():
            raise BadInput(f"cannot resume: '{run.root}' has no spec.json (is it a RaGAN run folder?)")
        saved = TrainSpec.load(run.spec)
        if spec is not None:
            if spec.width is None:  # no --width given: the run's
                spec = dataclasses.replace(spec, width=saved.width)
            changed = saved.differences(spec)
            if changed:
                raise BadInput(
                    f"cannot resume '{run.root}': it was made with other {', '.join(changed)}; "
                    "start a new run folder for new data or model options"
                )
            return spec
        return saved
    if spec is None:
        raise BadInput("no training spec given")
    if run.checkpoints.exists() and run.list_checkpoints():
        raise BadInput(
            f"run folder '{run.root}' already holds a run; use --resume to continue it or choose a new folder"
        )
    return spec


def _saved_spec(run: RunFolder) -> TrainSpec | None:
    try:
        return TrainSpec.load(run.spec)
    except BadInput:  # none yet, or a damaged one of this run folder's: written anew
        return None


def train(
    spec: TrainSpec | None,
    root: Path,
    reporter: Reporter,
    resume: bool = False,
    strategy=None,
    accept_changed_inputs: bool = False,
    spec_file: Path | None = None,
    started: float | None = None,
) -> dict:
    """Train (or resume) the run in `root`; returns the `finished` event.

    `root` must be new, empty, a RaGAN run folder, or hold only `spec_file` (the spec.json the run starts with).
    `started`: when the command began (default now); a STOP file older than that is from an earlier run.
    A resume whose input files changed since preparation is refused unless `accept_changed_inputs` (then the cache
    is prepared again from the files as they are now)."""
    run = RunFolder(root, started=time.time() if started is None else started)
    wanted = spec or _saved_spec(run)
    # Stop requests count from the start: a stop while preparing ends the run before training, with nothing trusted
    # left half-written.
    with stop_requests() as stop:

        def stop_reason():
            return stop["signal"] or ("stop file" if run.stop_requested() else None)

        try:
            if strategy is None and wanted is not None and several_hosts(wanted):
                strategy = _join_hosts(wanted, reporter, stop["take_signals"])
        finally:
            block_stop_signals(False)  # a stop signal held since `ragan train` started arrives now, at RaGAN's handlers
        hosts = strategy is not None and _several_hosts_strategy(strategy)
        chief = strategy is None or strategy.extended.should_checkpoint
        with contextlib.ExitStack() as scratch:
            folder, options = run, (resume, accept_changed_inputs, spec_file)
            if not chief:
                # A worker of several hosts other than the chief reads the run folder (spec, checkpoints, STOP) and
                # writes nothing there; it prepares its own copy of the slices in a scratch folder, deleted at the end.
                spec = _open_run(spec, run, resume)
                folder = RunFolder(scratch.enter_context(tempfile.TemporaryDirectory(prefix="ragan-")), run.started)
                options = (False, False, None)
                scratch.callback(setattr, reporter, "run_folder", None)  # from then on events reach stdout only
            try:
                # Several hosts prepare to the end: a worker that left here would leave the others waiting in their
                # first collective; a stop during preparation takes effect, agreed, before the first step.
                prepare_stop = (lambda: None) if hosts else stop_reason
                spec, data = _prepare_run(spec, folder, reporter, *options, prepare_stop)
            except PreparationStopped as reason:
                reporter.notice(f"stop requested ({reason}) while preparing; nothing was trained")
                if chief:
                    run.clear_stop()
                return reporter.emit("finished", reason="stopped", step=0, model=None)
            return _train_prepared(spec, run, data, reporter, resume, strategy, stop_reason)


def _prepare_run(spec, run: RunFolder, reporter: Reporter, resume: bool, accept_changed_inputs: bool, spec_file, stop):
    """Check the request and the inputs, then make or reuse the slice cache; returns the spec and the data."""
    # Initialize.
    may_hold = ("spec.json",) if spec_file is not None and Path(spec_file).resolve() == run.spec.resolve() else ()
    if outputs.check(run.root, "run", may_hold):
        run.lock()  # a second trainer on the folder is refused before anything is read or written
        freed = run.remove_temporaries()
        if freed:
            reporter.notice(f"removed temporary files ({freed / 1e6:.1f} MB) that an interrupted run left")
    spec = _open_run(spec, run, resume)
    outputs.check_contents(run.model, model_folder.MODEL_FILES)

    # Load training set: check every input before the run folder gets anything.
    refuse_changed = resume and not accept_changed_inputs
    cached = load_cache(run.cache, spec, reporter, refuse_changed_inputs=refuse_changed)
    plan = None if cached else survey(spec, reporter, stop)
    outputs.claim(run.root, "run", may_hold)
    run.create()
    run.lock()
    reporter.attach(run.root)
    for stale in outputs.remove_stale_staging(run.model):
        reporter.notice(f"removed '{stale.name}', left behind by an earlier trainer that was killed")
    if run.stop_file.exists() and not run.stop_requested():
        reporter.notice(f"ignoring '{run.stop_file}': it is older than this start; touch it again to stop the run")
    spec = with_width(spec)  # after the input checks: finding the device loads TensorFlow
    saved = _saved_spec(run)
    # The spec.json a run was started with stays as it is when nothing but the device's default width was added.
    if saved is None or dataclasses.replace(saved, width=saved.width or spec.width) != spec:
        spec.save(run.spec)
    if cached:
        reporter.notice(f"reusing {cached.meta['slices']} prepared slices from {run.cache}")
    data = cached or write_cache(plan, run.cache, stop)
    reporter.emit(
        "prepared",
        cases=data.meta["cases"],
        slices=data.meta["slices"],
        classes=[c["name"] for c in data.classes],
        size=spec.size,
        spacing=data.meta["spacing"],
        modality=data.meta["modality"],
    )
    return spec, data


@contextlib.contextmanager
def stop_requests():
    """While inside, SIGTERM and SIGINT only set the yielded flag (the loop then checkpoints and stops); the
    previous handlers come back afterwards, so a program that trains several runs can still be interrupted.
    `stop["take_signals"]()` installs the handlers again after a library replaced them."""
    stop = {"signal": None}

    def request_stop(number, _frame):
        stop["signal"] = signal.Signals(number).name

    def take_signals():
        return {number: signal.signal(number, request_stop) for number in STOP_SIGNALS}

    stop["take_signals"] = take_signals
    previous = take_signals()
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _join_hosts(spec: TrainSpec, reporter: Reporter, take_signals):
    """MultiWorkerMirroredStrategy for several hosts, made with the stop signals blocked in this thread (train()
    unblocks them once RaGAN's handlers are back).

    Making it starts TensorFlow's coordination service agent, which installs TensorFlow's own C++ SIGTERM handler
    (tsl's SigtermNotifier) and then waits until every host has connected. That handler only sets a flag that a
    thread polls once a second to post a preemption notice into the cluster's key-value store (for TensorFlow's
    PreemptionCheckpointHandler, which RaGAN does not use); it neither stops the process nor its collectives, and
    before the hosts are connected the notice is not even posted. A SIGTERM it takes is lost: the worker trains on to
    the end. Blocked here (and in the threads numpy and TensorFlow start, which inherit the mask: `ragan train`
    blocks the signals before importing either, runfolder.block_stop_signals), a signal stays pending until RaGAN's
    handlers are back, then stops the run before its first step."""
    reporter.notice("waiting for the other hosts of TF_CONFIG's cluster to connect")
    block_stop_signals(True)
    strategy = choose_strategy(spec, reporter)  # before any other TensorFlow op of this process
    take_signals()
    return strategy


def _several_hosts_strategy(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _train_prepared(
    spec: TrainSpec, run: RunFolder, data, reporter: Reporter, resume: bool, strategy, stop_reason
) -> dict:
    import tensorflow as tf

    strategy = strategy or choose_strategy(spec, reporter)
    device = describe_device()
    # Several hosts: only the chief writes into the run folder; all agree on where they start and when they stop.
    chief = strategy.extended.should_checkpoint
    hosts = _several_hosts_strategy(strategy)
    everywhere = _mean_over_workers(strategy) if hosts else None

    # Construct networks; restore.
    trainer = GanTrainer(spec, data, strategy, reporter)
    start = trainer.load_checkpoint(run, reporter, set_aside=chief) if resume else 0
    if hosts and everywhere([float(everywhere([start])[0] != start)])[0] > 0:  # one differs: all see it
        raise RuntimeError(f"the workers found different checkpoints in '{run.checkpoints}' (this one step {start})")

    def agreed_stop() -> str | None:
        """Why to stop now; on several hosts any worker's request counts, so that all stop at the same step."""
        reason = stop_reason()
        if hosts and everywhere([1.0 if reason else 0.0])[0] > 0:
            reason = reason or "another worker's stop request"
        return reason

    reason = hosts and agreed_stop()  # a stop while the hosts connected or prepared
    if reason:
        reporter.notice(f"stop requested ({reason}) before step {start + 1}; nothing was trained")
        if chief:
            run.clear_stop()
        return reporter.emit("finished", reason="stopped", step=start, model=None)
    if start == 0 and chief:
        trainer.best.write(run)  # nothing scored yet: a best.npz that an earlier start left goes
    if resume and start == 0:
        reporter.notice("no usable checkpoint found: starting from step 0")
    reporter.emit(
        "started",
        run=str(run.root),
        device=device,
        replicas=strategy.num_replicas_in_sync,
        step=start,
        total=spec.steps,
        resumed=resume,
        precision=trainer.generator.dtype_policy.name,
        **({"worker": _task_name(strategy), "chief": chief} if hosts else {}),
    )
    preview_latents = offset_seed(spec.seed, "preview")
    writer = tf.summary.create_file_writer(str(run.tensorboard)) if chief else tf.summary.create_noop_writer()
    # A conditional preview shows the same real slices each time: their label | the synthetic image | the real image.
    shown = np.sort(np.random.default_rng(preview_latents).permutation(len(data.labels))[:PREVIEW_COUNT])

    def write_preview(step: int) -> None:
        description = model_folder.model_description(data, spec, step)
        if spec.mode == "conditional":
            layouts = iter(np.asarray(data.labels[shown]))
            images, labels = sample(trainer.ema, len(shown), preview_latents, trainer.latent_size, layouts)
            real = np.asarray(data.images[shown], dtype=np.float32)
            title = f"step {step}: label | synthetic | real"
            picture = preview.titled([(title, preview.side_by_side(labels, images, real, description.colors))])
        else:
            images, labels = sample(trainer.ema, PREVIEW_COUNT, preview_latents, trainer.latent_size)
            picture = preview_picture(images, labels, description, f"step {step}")
        png = run.previews / f"preview-{step:08d}.png"
        preview.save_png(picture, png)
        volumes = write_volumes(run.previews, *to_source(images, labels, description), description, stem="preview")
        with writer.as_default():
            tf.summary.image("preview", np.asarray(picture)[None], step=step)
        reporter.emit("preview", step=step, png=str(png), **volumes)

    def finish(step: int, reason: str) -> dict:
        if not chief:
            return reporter.emit("finished", reason=reason, step=step, model=None)
        path = trainer.save_checkpoint(run, step)
        reporter.emit("checkpoint", step=step, path=str(path))
        write_preview(step)
        # The last step is kept in the checkpoint above; the model is the best-scoring step's (the trainer ends here).
        selection = trainer.best.select(trainer.ema, step)
        description = dataclasses.replace(model_folder.model_description(data, spec, step), selection=selection)
        folder = model_folder.export(trainer.ema, description, run.model, data.labels)
        run.clear_stop()
        return reporter.emit(
            "finished",
            reason=reason,
            step=step,
            model=str(folder),
            model_step=selection["step"],
            frechet=selection["frechet"],
        )

    def score(step: int) -> float:
        """Score the EMA generator, keep it when it is the best so far, report; returns the seconds it took."""
        began = time.perf_counter()
        frechet = trainer.best.score(trainer.ema)
        trainer.best.update(step, frechet, trainer.ema, run)
        seconds = time.perf_counter() - began
        reporter.emit(
            "score",
            step=step,
            frechet=round(frechet, 4),
            best_step=trainer.best.step,
            best_frechet=round(trainer.best.frechet, 4) if trainer.best.step is not None else None,
            seconds=round(seconds, 2),
        )
        with writer.as_default():
            tf.summary.scalar("quality/frechet", frechet, step=step)
        return seconds

    # Train.
    batches = trainer.dataset(data, start)
    window_start, window_steps, seconds_per_step = time.perf_counter(), 0, None
    step = start
    try:
        while step < spec.steps:
            losses = trainer.step(next(batches), step)
            step += 1
            window_steps += 1
            if step % spec.log_every == 0 or step == spec.steps:
                values = {k: float(v) for k, v in losses.items()}
                real_sign, augment_p = values.pop("real_sign"), float(trainer.augment_p.numpy())
                trainer.check_losses(values, step, run)
                now = time.perf_counter()
                measured = (now - window_start) / window_steps
                seconds_per_step = measured if seconds_per_step is None else 0.7 * seconds_per_step + 0.3 * measured
                window_start, window_steps = now, 0
                reporter.emit(
                    "progress",
                    step=step,
                    total=spec.steps,
                    images_per_s=round(spec.batch / measured, 2),
                    losses={k: round(v, 4) for k, v in values.items()},
                    augment_p=round(augment_p, 4),
                    eta_s=round(seconds_per_step * (spec.steps - step), 1),
                )
                with writer.as_default():
                    for name, value in values.items():
                        tf.summary.scalar(f"loss/{name}", value, step=step)
                    tf.summary.scalar("augment/p", augment_p, step=step)
                    tf.summary.scalar("augment/real_sign", real_sign, step=step)
                    tf.summary.scalar("speed/images_per_s", spec.batch / measured, step=step)
            if step == start + 1:  # the first step compiles the graph: keep it out of later speed and ETA
                window_start, window_steps, seconds_per_step = time.perf_counter(), 0, None
            reason = agreed_stop()
            if reason:
                trainer.check_losses(losses, step, run)
                reporter.notice(f"stop requested ({reason}) at step {step}")
                return finish(step, "stopped")
            if chief and trainer.best.due(step, spec.steps):  # only the chief exports the model it selects
                trainer.check_losses(losses, step, run)
                window_start += score(step)  # scoring time is not training speed
            if step == spec.steps:
                break
            # The checkpoint comes before the preview: the preview refuses weights that are not finite.
            if chief and step % spec.checkpoint_every == 0:
                path = trainer.save_checkpoint(run, step)
                reporter.emit("checkpoint", step=step, path=str(path))
            if step % spec.preview_every == 0:
                trainer.check_losses(losses, step, run)
                if chief:
                    write_preview(step)
    except tf.errors.ResourceExhaustedError:
        raise OutOfMemory(
            f"the device ran out of memory at size {spec.size}, batch {spec.batch}; use a smaller batch or size"
        ) from None
    finally:
        writer.flush()
    return finish(step, "completed")


def _mean_over_workers(strategy):
    """A function averaging a few numbers over all replicas of all workers: one small collective."""
    import tensorflow as tf

    @tf.function
    def mean(values):
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(tf.identity, args=(values,)), axis=None)

    return lambda values: mean(tf.constant(values, tf.float32)).numpy().tolist()


def _task_name(strategy) -> str:
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type} {resolver.task_id}"
