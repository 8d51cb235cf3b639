"""Training: ``codec train CONFIG.yaml [key=value ...]`` (also ``python -m codec.train``).

The loop in one breath: build the model, the optional discriminator, their AdamW
optimisers and warmup+cosine schedules; resume from the run's newest readable
checkpoint if there is one, or else start from ``train.init_from``'s weights
(codec/train/finetune.py); then for each step take the batch whose indices are
``step * batch_size + j`` (so the step *is* the data position), run ``train_step``,
log, validate, checkpoint. Rerunning the same command resumes the run.

Randomness (quantiser dropout, k-means seeding) is reseeded at every step from
``(train.seed, step, rank)``, so a resumed run draws exactly what the uninterrupted
one would have, on any number of processes, without carrying RNG states around.

Distributed: start with ``torchrun --nproc_per_node N -m codec.train CONFIG``. Each
process takes its own slice of every batch (``data.batch_size`` is the global
batch); gradients are averaged by DistributedDataParallel; the quantiser averages
its EMA statistics itself; only rank 0 validates, logs and saves.

The package, one concern a module: distributed (processes, devices, seeds), schedule
(learning rate, data order), inputs (training set, validation crops), trainer (what a
step changes), step (one update), state (checkpoints, resuming), validation (the crops
coded as ``codec encode`` codes them), loop (the whole run); beside them the losses,
discriminator balancing, data, monitoring and thread tuning the loop uses.
"""
from codec.train.loop import TrainResult, fit

__all__ = ["TrainResult", "fit"]
