"""Where training runs: the GAN training loop over a run folder, with checkpoints, resume, stop and reporting.

    result = train(spec, Path("runs/liver"), Reporter(json_lines=True))          # a new run
    result = train(None, Path("runs/liver"), Reporter(), resume=True)            # continue it after a stop or crash

train() reads by phase: initialize (check the request and the inputs, prepare the slices: _prepare_run), construct
the networks and restore the newest usable checkpoint, train (progress, scores, checkpoints, previews), finish (the
best-scoring step's EMA generator exported as the model). GanTrainer holds the networks, optimisers, the EMA of the
generator and the compiled train step; each other part has its own module:
- RaGANLib/training/pipeline.py: the batches (slices drawn with class balance, latents, augmentation seeds), all from
  (seed, step), so that a resumed run draws the same batches it would have drawn;
- RaGANLib/model/networks.py: the network families and the generator contract;
- RaGANLib/training/losses.py: non-saturating logistic GAN losses, the lazy R1 penalty on (augmented) real pairs;
- RaGANLib/training/augment.py: differentiable augmentation of real and synthetic pairs (fixed, or adapted: ADA);
- RaGANLib/training/checkpoints.py: save with a checksum, load the newest usable one, set damaged ones aside;
- RaGANLib/training/best_model.py: the EMA generator scored every `--score-every` steps, the best step's weights kept;
- RaGANLib/results/preview.py: the previews, drawn from the EMA generator.
- RaGANLib/training/distributed.py: the device, the strategy over GPUs and hosts, stop signals, what hosts agree on;
- RaGANLib/quality/downstream.py: the U-Net and its loss, here the segmenter of --seg-consistency.

Modes (spec.mode): joint, the generator makes the image and its label; conditional, the generator makes an image
for a label layout (a batch's real labels, moved: RaGANLib.results.layouts) and the synthetic pair is (that image, that
layout). Only `_fake_pair`, the batches and the preview differ; the loop, losses and checkpoints are shared.
"""

import contextlib
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from RaGANLib.data.body import with_body
from RaGANLib.data.prepare import PreparationStopped, PreparedData, load_cache, survey, write_cache
from RaGANLib.errors import BadInput, OutOfMemory
from RaGANLib.events import Reporter
from RaGANLib.model import model_folder
from RaGANLib.quality.metrics import detail_is_off, detail_verdict
from RaGANLib.results import outputs
from RaGANLib.results.preview import TrainingPreview
from RaGANLib.spec import TrainSpec, default_width
from RaGANLib.training import checkpoints, distributed, pipeline
from RaGANLib.training.best_model import BestModel
from RaGANLib.training.runfolder import RunFolder, block_stop_signals

FORCE_MIXED_PRECISION = "RAGAN_FORCE_MIXED_PRECISION"  # set (to anything): --mixed-precision also without a GPU
# --seg-consistency's segmenter: a U-Net half as wide as the downstream test's (a quarter of its compute per step),
# trained at the downstream test's learning rate.
SEGMENTER_WIDTH, SEGMENTER_DEPTH, SEGMENTER_LR = 8, 4, 1e-3


def with_width(spec: TrainSpec) -> TrainSpec:
    """The spec with its network width fixed: --width's, or the default for this device (spec.default_width)."""
    import tensorflow as tf

    if spec.width is not None:
        return spec
    return dataclasses.replace(spec, width=default_width(spec.size, bool(tf.config.list_physical_devices("GPU"))))


class GanTrainer:
    """Networks, optimisers and the compiled train step of one run."""

    def __init__(self, spec: TrainSpec, data: PreparedData, strategy, reporter: Reporter):
        import keras
        import tensorflow as tf

        from RaGANLib.model.networks import LATENT_SIZE, GeneratorContract, family
        from RaGANLib.quality.downstream import build_unet

        spec = with_width(spec)
        self.spec, self.strategy = spec, strategy
        self.classes = len(data.classes)
        self.latent_size = LATENT_SIZE
        networks, width = family(spec.arch), spec.width
        contract = GeneratorContract(spec.mode, spec.size, self.classes)
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
            options = dict(
                smooth_labels=spec.smooth_labels, border_padding=spec.border_padding, pixel_noise=spec.pixel_noise
            )
            self.generator = networks.generator(contract, width, **options)
            self.discriminator = networks.discriminator(spec.size, self.classes, width)
            keras.mixed_precision.set_global_policy("float32")
            self.ema = networks.generator(contract, width, "generator_ema", **options)
            self.ema.set_weights(self.generator.get_weights())
            self.g_optimizer = keras.optimizers.Adam(spec.lr, beta_1=0.0, beta_2=0.99)
            self.d_optimizer = keras.optimizers.Adam(spec.lr, beta_1=0.0, beta_2=0.99)
            if mixed:
                self.g_optimizer = keras.optimizers.LossScaleOptimizer(self.g_optimizer)
                self.d_optimizer = keras.optimizers.LossScaleOptimizer(self.d_optimizer)
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            # --seg-consistency: a small U-Net learns to segment the real pairs as the GAN trains; its loss on each
            # synthetic image against that image's label is a generator loss term (an image that does not show its
            # label costs). It is a training aid only: checkpoints keep it, the model folder does not.
            self.segmenter = None
            if spec.seg_consistency:
                self.segmenter = build_unet(spec.size, self.classes, SEGMENTER_WIDTH, SEGMENTER_DEPTH)
                self.s_optimizer = keras.optimizers.Adam(SEGMENTER_LR)
                self.s_optimizer.build(self.segmenter.trainable_variables)
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
        self._step = tf.function(self._distributed_step, jit_compile=spec.xla)  # R1 or not: one trace, a tf.cond

    # Train.
    def _replica_step(self, images, labels, latents, seed, layouts=None, with_r1=False):
        import tensorflow as tf

        from RaGANLib.quality.downstream import segmentation_loss
        from RaGANLib.training import losses
        from RaGANLib.training.augment import augment_pairs

        spec = self.spec
        global_batch = float(spec.batch)
        real = pipeline.real_pairs(images, labels, self.classes)
        seeds = tf.random.experimental.stateless_split(seed, num=3)
        p = self.augment_p if self.adaptive else spec.augment  # a fixed 0 skips augmentation altogether

        with tf.GradientTape() as tape:
            fake = self._fake_pair(latents[0], layouts)
            real_augmented = augment_pairs(real, p, seeds[0])
            fake_augmented = augment_pairs(fake, p, seeds[1])
            real_score, r1 = losses.scores_and_r1(self.discriminator, real_augmented, with_r1)
            fake_score = self.discriminator(fake_augmented, training=True)
            d_adversarial = losses.discriminator_loss(real_score, fake_score)
            d_loss = tf.reduce_sum(losses.with_r1_penalty(d_adversarial, r1, spec.r1_gamma)) / global_batch
            scaled = self.d_optimizer.scale_loss(d_loss)
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply(tape.gradient(scaled, variables), variables)

        share = tf.cast(tf.shape(images)[0], "float32") / global_batch  # the replicas' mean terms sum to one mean
        segmented = {}
        if self.segmenter is not None:  # learns the real (augmented) pairs, as a segmentation network would
            with tf.GradientTape() as tape:
                truth = real_augmented[..., 1:]
                segmented["seg_real"] = share * segmentation_loss(truth, self.segmenter(real_augmented[..., :1]))
            variables = self.segmenter.trainable_variables
            self.s_optimizer.apply(tape.gradient(segmented["seg_real"], variables), variables)

        with tf.GradientTape() as tape:
            fake = self._fake_pair(latents[1], layouts)
            score = self.discriminator(augment_pairs(fake, p, seeds[2]), training=True)
            g_loss = tf.reduce_sum(losses.generator_loss(score)) / global_batch
            if spec.class_intensity and layouts is not None:
                g_loss += spec.class_intensity * share * losses.class_intensity_gap(fake, images, labels, self.classes)
            if self.segmenter is not None:  # its loss on the synthetic image against the synthetic label
                fake32 = tf.cast(fake, "float32")
                segmented["seg_fake"] = share * segmentation_loss(fake32[..., 1:], self.segmenter(fake32[..., :1]))
                g_loss += spec.seg_consistency * segmented["seg_fake"]
            scaled = self.g_optimizer.scale_loss(g_loss)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(scaled, variables), variables)
        return {
            **segmented,
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

        from RaGANLib.training.augment import harden

        if layouts is None:  # labels one-hot (straight-through): the discriminator cannot tell them by softness
            pair = self.generator(latents, training=True)
            return tf.concat([pair[..., :1], harden(pair[..., 1:])], axis=-1)
        label = tf.one_hot(tf.cast(layouts, tf.int32), self.classes)
        return tf.concat([self.generator([label, latents], training=True), label], axis=-1)

    def _distributed_step(self, batch, ema_beta, with_r1):
        import tensorflow as tf

        from RaGANLib.training.augment import ada_adjust

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

    def _update_ema(self, beta) -> None:
        import tensorflow as tf

        for average, current in zip(self.ema.weights, self.generator.weights):
            average.assign(beta * average + (1 - beta) * tf.cast(current, average.dtype))

    def step(self, batch, step: int) -> dict:
        from RaGANLib.training.losses import R1_INTERVAL

        # The EMA starts short and grows to its half-life, so early previews already show something.
        beta = min(0.5 ** (1 / self.spec.ema_halflife), (1 + step) / (10 + step))
        with_r1 = step % R1_INTERVAL == 0
        results = self._step(batch, np.float32(beta), np.bool_(with_r1))
        if with_r1:
            self._last_r1 = results["r1"]
        return {**results, "r1": self._last_r1}  # the penalty of the latest step that computed it

    def dataset(self, data: PreparedData, start: int):
        """This run's batches for steps start.. (RaGANLib/training/pipeline.py)."""
        return pipeline.batches(self.spec, data, self.strategy, self.latent_size, start)

    # Checkpoints (RaGANLib/training/checkpoints.py).
    def groups(self) -> dict:
        """The variable groups a checkpoint holds."""
        return {
            "generator": self.generator.weights,
            "discriminator": self.discriminator.weights,
            "ema": self.ema.weights,
            "g_optimizer": self.g_optimizer.variables,
            "d_optimizer": self.d_optimizer.variables,
            "augment": [self.augment_p, self.ada_sums],
            **(
                {"segmenter": self.segmenter.weights, "s_optimizer": self.s_optimizer.variables}
                if self.segmenter is not None
                else {}
            ),
        }

    def save_checkpoint(self, run: RunFolder, step: int) -> Path:
        """Write the state of `step`, with the best model so far."""
        extra = self.best.checkpoint_arrays()
        return checkpoints.save(run, step, self.groups(), extra, self.spec.keep_checkpoints)

    def load_checkpoint(self, run: RunFolder, reporter: Reporter, set_aside: bool = True) -> int:
        """Restore the newest usable checkpoint (RaGANLib.training.checkpoints.newest_usable); returns its step (0:
        none)."""

        def check(arrays: dict, name: str):
            groups = self.groups()
            if "augment/0000" not in arrays:  # written before the augmentation state was kept
                del groups["augment"]
                if self.adaptive:
                    reporter.notice(f"checkpoint '{name}' has no augmentation state: p starts from 0")
            checkpoints.check_groups(arrays, groups)
            return groups, self.best.read_checkpoint(arrays, self.ema)

        step, arrays, checked = checkpoints.newest_usable(run, reporter, check, set_aside)
        if arrays is None:
            return 0
        groups, best = checked
        checkpoints.assign_groups(arrays, groups)
        if not self.adaptive:  # a fixed --augment given on resume applies from here on
            self.augment_p.assign(float(self.spec.augment))
        self.best.restore(best, run if set_aside else None)
        return step


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
    # Initialize: stop requests, and the other hosts when there are several.
    run = RunFolder(root, started=time.time() if started is None else started)
    wanted = spec or _saved_spec(run)
    # Stop requests count from the start: a stop while preparing ends the run before training, with nothing trusted
    # left half-written.
    with distributed.stop_requests() as stop:

        def stop_reason():
            return stop["signal"] or ("stop file" if run.stop_requested() else None)

        try:
            if strategy is None and wanted is not None and distributed.several_hosts(wanted):
                strategy = distributed.join_hosts(wanted, reporter, stop["take_signals"])
        finally:
            block_stop_signals(False)  # a stop signal held since `ragan train` started arrives now, at RaGAN's handlers
        hosts = strategy is not None and distributed.on_several_hosts(strategy)
        chief = strategy is None or strategy.extended.should_checkpoint

        # Load the training set: the request and the inputs checked, the slices prepared (or reused).
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

            # Construct the networks, restore, train, export the model.
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
    data = cached or write_cache(plan, run.cache, stop)
    summary = data.training_data(spec, 0)
    if cached:
        reporter.notice(f"reusing {summary.slices} prepared slices from {run.cache}")
    reporter.emit(
        "prepared",
        cases=summary.cases,
        slices=summary.slices,
        classes=[c.name for c in data.label_classes],
        size=spec.size,
        spacing=list(data.grid.spacing),
        modality=data.modality,
    )
    return spec, data


def _train_prepared(
    spec: TrainSpec, run: RunFolder, data, reporter: Reporter, resume: bool, strategy, stop_reason
) -> dict:
    import tensorflow as tf

    # Initialize.
    strategy = strategy or distributed.choose_strategy(spec, reporter)
    device = distributed.describe_device()
    # Several hosts: only the chief writes into the run folder; all agree on where they start and when they stop.
    chief = strategy.extended.should_checkpoint
    hosts = distributed.on_several_hosts(strategy)
    everywhere = distributed.mean_over_workers(strategy) if hosts else None

    # Construct networks; restore. The networks see the training labels as conditions: with --body, the body outline
    # added as one more class (RaGANLib/data/body.py); the model's description and labels are those of `data`.
    conditions = with_body(data) if spec.body else data
    trainer = GanTrainer(spec, conditions, strategy, reporter)
    start = trainer.load_checkpoint(run, reporter, set_aside=chief) if resume else 0
    if hosts and everywhere([float(everywhere([start])[0] != start)])[0] > 0:  # one differs: all see it
        raise RuntimeError(f"the workers found different checkpoints in '{run.checkpoints}' (this one step {start})")

    def agreed_stop() -> str | None:
        """Why to stop now; on several hosts any worker's request counts, so that all stop at the same step."""
        reason = stop_reason()
        if hosts and everywhere([1.0 if reason else 0.0])[0] > 0:
            reason = reason or "another worker's stop request"
        return reason

    # Start, or stop before the first step.
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
        **({"worker": distributed.task_name(strategy), "chief": chief} if hosts else {}),
    )
    # What the loop writes: previews, scores, progress and, at the end, the model.
    writer = tf.summary.create_file_writer(str(run.tensorboard)) if chief else tf.summary.create_noop_writer()
    previews = TrainingPreview(conditions, spec, trainer.latent_size)

    def write_preview(step: int) -> None:
        description = model_folder.model_description(data, spec, step)
        picture, found = previews.write(trainer.ema, description, run.previews, step)
        with writer.as_default():
            tf.summary.image("preview", np.asarray(picture)[None], step=step)
            tf.summary.scalar("fine_detail", found["fine_detail"], step=step)
        reporter.emit("preview", step=step, **found)
        detail = found["fine_detail"]
        if detail_is_off(detail):
            reporter.notice(f"preview at step {step}: the synthetic slices are {detail_verdict(detail)}")

    def finish(step: int, reason: str) -> dict:
        if not chief:
            return reporter.emit("finished", reason=reason, step=step, model=None)
        path = trainer.save_checkpoint(run, step)
        reporter.emit("checkpoint", step=step, path=str(path))
        write_preview(step)
        # The last step is kept in the checkpoint above; the model is the best-scoring step's (the trainer ends here).
        selection = trainer.best.select(trainer.ema, step)
        description = dataclasses.replace(model_folder.model_description(data, spec, step), selection=selection)
        folder = model_folder.export(trainer.ema, description, run.model, conditions.labels)
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

    def report_progress(step: int, losses: dict) -> None:
        values = {k: float(v) for k, v in losses.items()}
        real_sign, augment_p = values.pop("real_sign"), float(trainer.augment_p.numpy())
        checkpoints.check_losses(values, step, run)
        measured = speed.measure()
        reporter.emit(
            "progress",
            step=step,
            total=spec.steps,
            images_per_s=round(spec.batch / measured, 2),
            losses={k: round(v, 4) for k, v in values.items()},
            augment_p=round(augment_p, 4),
            eta_s=round(speed.seconds_per_step * (spec.steps - step), 1),
        )
        with writer.as_default():
            for name, value in values.items():
                tf.summary.scalar(f"loss/{name}", value, step=step)
            tf.summary.scalar("augment/p", augment_p, step=step)
            tf.summary.scalar("augment/real_sign", real_sign, step=step)
            tf.summary.scalar("speed/images_per_s", spec.batch / measured, step=step)

    # Train.
    batches = trainer.dataset(conditions, start)
    speed = Speed()
    step = start
    try:
        while step < spec.steps:
            losses = trainer.step(next(batches), step)
            step += 1
            speed.stepped()
            if step % spec.log_every == 0 or step == spec.steps:
                report_progress(step, losses)
            if step == start + 1:  # the first step compiles the graph: keep it out of later speed and ETA
                speed.restart()
            reason = agreed_stop()
            if reason:
                checkpoints.check_losses(losses, step, run)
                reporter.notice(f"stop requested ({reason}) at step {step}")
                return finish(step, "stopped")
            if chief and trainer.best.due(step, spec.steps):  # only the chief exports the model it selects
                checkpoints.check_losses(losses, step, run)
                speed.pause(score(step))  # scoring time is not training speed
            if step == spec.steps:
                break
            # The checkpoint comes before the preview: the preview refuses weights that are not finite.
            if chief and step % spec.checkpoint_every == 0:
                path = trainer.save_checkpoint(run, step)
                reporter.emit("checkpoint", step=step, path=str(path))
            if step % spec.preview_every == 0:
                checkpoints.check_losses(losses, step, run)
                if chief:
                    write_preview(step)
    except tf.errors.ResourceExhaustedError:
        raise OutOfMemory(
            f"the device ran out of memory at size {spec.size}, batch {spec.batch}; use a smaller batch or size"
        ) from None
    finally:
        writer.flush()
    return finish(step, "completed")


class Speed:
    """Seconds per training step over the steps since the last report, and their smoothed average for the ETA."""

    def __init__(self):
        self.restart()

    def restart(self) -> None:
        """Count from now and forget what was measured (the first step, which compiles the graph)."""
        self.window_start, self.window_steps, self.seconds_per_step = time.perf_counter(), 0, None

    def stepped(self) -> None:
        self.window_steps += 1

    def pause(self, seconds: float) -> None:
        """Leave `seconds` that were not training (scoring) out of the speed."""
        self.window_start += seconds

    def measure(self) -> float:
        """Seconds per step since the last measure; the smoothed average follows."""
        now = time.perf_counter()
        measured = (now - self.window_start) / self.window_steps
        smoothed = self.seconds_per_step
        self.seconds_per_step = measured if smoothed is None else 0.7 * smoothed + 0.3 * measured
        self.window_start, self.window_steps = now, 0
        return measured
