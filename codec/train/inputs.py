"""What a run reads besides its config: the training set, the validation crops and the
clips TensorBoard plays.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from codec.config import Config


def build_datasets(config: Config) -> tuple[Any, list[torch.Tensor]]:
    """(train dataset, validation crops ``[C, T]``) from the ``data`` section.

    The crops are read once and kept in memory. Without ``data.valid`` the run
    validates on crops from the far end of the training stream, which the sampler
    never reaches in practice (but they come from the training files: a warning says so).
    """
    from codec.train import data

    train_set, valid_set = data.build_datasets(config.data, config.model.sample_rate,
                                               config.model.channels, config.train.seed)
    if valid_set is None:
        warnings.warn("data.valid is empty: validating on crops of the training files; "
                      "give a held-out manifest for honest numbers", stacklevel=2)
        last = len(train_set) - 1
        return train_set, [train_set[last - i] for i in range(config.data.valid_crops)]
    return train_set, [valid_set[i] for i in range(len(valid_set))]


def listening_clips(config: Config) -> list[torch.Tensor]:
    """``train.valid_audio_clips`` clips ``[C, T]`` of ``train.listen_seconds`` (the most
    salient stretch; shorter files whole) from the validation files, one group after
    another, for TensorBoard's audio and mel images: long enough to judge by ear,
    unlike validation crops. Empty without ``data.valid``."""
    from codec.train.data import ValidCrops

    data, train = config.data, config.train
    if not data.valid or train.valid_audio_clips <= 0:
        return []
    clips = ValidCrops(data.valid, config.model.sample_rate, config.model.channels,
                       count=train.valid_audio_clips, segment_seconds=train.listen_seconds,
                       target_lufs=data.target_lufs, salient_min_db=data.salient_min_db,
                       salient_retries=data.salient_retries, seed=train.seed)
    result = []
    for index in range(len(clips)):
        row = int(clips.rows[index % len(clips.rows)])
        seconds = int(clips.manifest.frames[row]) / int(clips.manifest.sample_rates[row])
        result.append(clips[index][:, :math.ceil(seconds * config.model.sample_rate)])
    return result
