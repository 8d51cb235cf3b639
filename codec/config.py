"""Typed configuration: dataclass schemas, named model presets, YAML merging.

The library never reads YAML itself: objects take keyword arguments and this
module builds them. A YAML file may name a ``base:`` file (relative to itself)
and hold only its differences; dotted overrides (``train.lr=3e-4``) come last.
Unknown keys are errors, reported with their full dotted name.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from codec.errors import CodecError


@dataclass
class ModelConfig:
    """Encoder, residual VQ and decoder. ``preset`` names the starting point.

    The field defaults describe the classic SEANet layout (as in EnCodec), so that a
    saved config from before a field existed still means what it meant;
    ``model_config`` and ``load_config`` lay the named preset's values over them.
    """
    preset: str = "base"
    # seanet: strided convs over the waveform; stft: a Fourier transform at each end
    # and convs at the frame rate (codec/network/spectral.py; offline coding only).
    arch: str = "seanet"
    sample_rate: int = 24000
    channels: int = 1
    strides: Tuple[int, ...] = (2, 4, 5, 8)
    widths: Tuple[int, ...] = (32, 64, 128, 256, 512)
    latent_dim: int = 128
    dilations: Tuple[int, ...] = (1, 3)
    # Stages before this one (the highest sample rates) have no residual units.
    first_residual_stage: int = 0
    kernel_size: int = 7
    residual_kernel_size: int = 3
    activation: str = "elu"
    weight_norm: bool = True
    causal: bool = False
    n_q: int = 8
    codebook_size: int = 1024
    ema_decay: float = 0.99
    kmeans_iters: int = 10
    # A code used less than this share of the average code's use (EMA) is replaced.
    dead_code_threshold: float = 0.1
    quantizer_dropout: float = 1.0
    # arch stft only: the transform's window in samples (at least two hops; a causal
    # model's analysis window, which looks back n_fft - hop samples).
    n_fft: int = 640
    # arch stft with causal: the decoder's frames overlap by this many samples, which the
    # decoded audio waits for: the whole delay is hop + synthesis_overlap samples.
    synthesis_overlap: int = 0
    # arch stft: the first codebooks code the input's level in this many bands per frame,
    # and the decoder brings each frame to them (codec/network/frame_levels.py); 0: none.
    level_bands: int = 0
    # Training only: this share of the items (drawn each step) decodes without its frame
    # levels, so the decoder learns the waveform's bands itself as well as within them.
    level_dropout: float = 0.0
    # How many codebooks (the first rows of the codes) code the frame levels, each
    # quantising what the ones before it left.
    level_codebooks: int = 1
    # causal arch stft: bring the decoded audio, not the decoder's frames, to the levels,
    # by a stage whose frames crossfade over this many samples after the decoder's own
    # crossfade (codec/network/level_stage.py); it adds as many samples of delay. 0: the
    # decoder's frames are brought to them.
    level_overlap: int = 0
    # A two-channel spectral model codes left/right as they come ("lr") or mid and side
    # ("ms"), mapped back after decoding (codec/network/stereo.py).
    stereo: str = "lr"


@dataclass(frozen=True)
class CodingConfig:
    """What coding reads besides the network (codec/coding/): the band levels sent beside
    the codes and the post-filter decoding runs. None of it shapes the network or enters
    the model id: a file says whether it holds levels and how they were measured, and the
    codes do not depend on the post-filter, so a file decodes with any exponent."""
    # Each decoded STFT magnitude to this power, the level kept (codec/coding/postfilter.py);
    # 1 is off.
    postfilter: float = 1.0
    # The input's level in this many bands, sent beside the codes and followed by the
    # decoded audio (codec/coding/band_levels.py); 0 is off.
    band_levels: int = 0
    band_level_frames: int = 2          # codec frames per level
    # The levels' resolution; a file whose levels pass band_level_kbps takes coarser steps.
    band_level_step_db: float = 4.0
    band_level_floor_db: float = -55.0  # the lowest level, under the loudness target
    # A span with every band under this (dB under the loudness target) decodes silent;
    # None: every span at the floor does. The encoder flags each span at the floor.
    band_level_silence_db: Optional[float] = -65.0
    # What a bitrate (--kbps) sets aside for the levels when it picks the codebook count.
    band_level_kbps: float = 1.5
    # The band count where a bitrate leaves the levels less than band_level_kbps (a low
    # bitrate is split evenly between codes and levels): fewer bands keep their spans
    # short there. 0: band_levels at every bitrate.
    band_levels_low_rate: int = 0


# The coding fields, which a model section saved before they had a section of their own
# still holds (split_saved_model moves them out).
CODING_FIELDS = tuple(f.name for f in dataclasses.fields(CodingConfig))


def split_saved_model(model: dict) -> tuple[dict, dict]:
    """A saved model section -> (its network fields, the coding fields it held): model
    files and checkpoints written before coding had a section of their own kept both
    under ``model``."""
    network = {k: v for k, v in model.items() if k not in CODING_FIELDS}
    return network, {k: v for k, v in model.items() if k in CODING_FIELDS}


# Named starting points; a config's ``model:`` section overrides any field.
#
# small and base put the compute where it is cheap. Convs with few channels over
# many samples are memory-bound on a CPU, so time goes to the 24 and 12 kHz stages
# far beyond their share of FLOPs; EnCodec-style (2, 4, 5, 8) with residual units at
# every stage spends most of its time there. Here the first stride is 8 (24 kHz ->
# 3 kHz through one 16-tap conv, like a learned analysis filterbank, and its mirror
# in the decoder, a learned overlap-add synthesis), the full-rate stage is 16 channels
# wide with no residual units (first_residual_stage=1), and the residual units
# (dilations 1 and 3) work at 3 kHz and below, with channels doubling as the rate
# falls. Both keep hop 320 (75 frames/s at 24 kHz) and 8 codebooks x 1024 codes
# = 6 kbps. `python -m eval.bench --peer encodec` measures them beside EnCodec's
# architecture (README, "Speed").
PRESETS: dict[str, dict[str, Any]] = {
    # Unit tests and smoke runs only: seconds to train, useless for listening.
    "tiny": dict(widths=(8, 16, 32, 64, 128), latent_dim=64, dilations=(1,), n_q=4,
                 codebook_size=256),
    # About 2M parameters: the CPU recipes (minutes to an hour on 2 cores), where the
    # number of steps per CPU-hour decides the quality.
    "small": dict(strides=(8, 5, 4, 2), widths=(16, 48, 96, 192, 384), dilations=(1, 3),
                  first_residual_stage=1),
    # About 3.4M parameters, the default: longer runs on a GPU or many cores; still far
    # faster than real time on 2 CPU threads for encoding and decoding.
    "base": dict(strides=(8, 5, 4, 2), widths=(16, 64, 128, 256, 512), dilations=(1, 3),
                 first_residual_stage=1),
    # About 9M parameters, all at the frame rate between a Fourier transform over two
    # hops and its inverse (codec/network/spectral.py): no time-domain convs to learn the phase,
    # so it learns far more per CPU-minute than small (recipes/cpu_hour/RESULTS.md).
    # It looks ahead 160 samples, so it codes offline only.
    "spectral": dict(arch="stft", strides=(320,), widths=(512, 512), dilations=(1, 3, 9),
                     n_fft=640),
    # The spectral preset at 44.1 kHz for stereo music (recipes/music44k_stereo): hop 588
    # keeps 75 frames/s, a window of two hops (26.7 ms), the two channels coded jointly
    # as mid and side (against left/right in the same steps: the balance between the
    # channels kept 0.15 dB closer, 0.2 dB less SNR; recipes/music44k_stereo/RESULTS.md),
    # and 16 codebooks: 12 kbps for the pair (8 of them 6 kbps). For
    # 48 kHz set model.sample_rate=48000 model.strides=[640] model.n_fft=1280.
    "spectral44k": dict(arch="stft", sample_rate=44100, channels=2, strides=(588,),
                        widths=(512, 512), dilations=(1, 3, 9), n_fft=1176, n_q=16,
                        stereo="ms"),
    # The spectral preset made causal, for live coding: it looks back, never ahead (a
    # frame's analysis window ends with its hop), and its decoder's frames crossfade over
    # 80 samples, so the whole delay is 400 samples (16.7 ms at 24 kHz). Frame levels
    # (model.level_bands, codec/network/frame_levels.py) stay off: with 12 bands the
    # CPU-hour got the envelope right and learned less of the waveform
    # (recipes/cpu_hour_causal/RESULTS.md). Widths 384, not the spectral preset's 512:
    # in two CPU-hours side by side it learned as much (validation speech at 6 kbps PESQ
    # 1.533 against 1.516, mel distance 1.418 against 1.471) and codes a frame in 0.8 of
    # the time on one thread (docs/notebook/live.md).
    "live": dict(arch="stft", causal=True, strides=(320,), widths=(384, 384),
                 dilations=(1, 3, 9), n_fft=640, synthesis_overlap=80),
    # GPU-scale (about 26M parameters): the original SEANet layout with residual units
    # at every rate, snake activations, 12 codebooks (up to 9 kbps). Slow on a CPU.
    "large": dict(strides=(2, 4, 5, 8), widths=(64, 128, 256, 512, 1024),
                  dilations=(1, 3, 9), first_residual_stage=0, activation="snake", n_q=12),
}


@dataclass
class LossWeights:
    """Weight of each loss term; 0 computes and logs the term without training on it."""
    mrstft: float = 1.0
    mel: float = 1.0
    l1: float = 0.1
    rms: float = 1.0
    snr: float = 0.0
    band_snr: float = 0.0
    stoi: float = 0.0            # computed only when some phase of the run weighs it
    commit: float = 1.0
    adv: float = 1.0
    feat: float = 2.0
    # Experimental (no recipe uses it; computed only when some phase of the run weighs
    # it): the mean dB by which decoded STFT bins exceed the input's.
    excess: float = 0.0


# The loudness (LUFS, ITU-R BS.1770) training crops are normalised to, and so the level
# encoding brings input to, unless a config says otherwise.
DEFAULT_TARGET_LUFS = -23.0


@dataclass
class DataConfig:
    train: Tuple[str, ...] = ()
    train_weights: Tuple[float, ...] = ()
    balance: str = "duration"
    valid: str = ""
    segment_seconds: float = 1.0
    target_lufs: Optional[float] = DEFAULT_TARGET_LUFS
    salient_retries: int = 5
    salient_min_db: float = -50.0
    valid_crops: int = 32
    batch_size: int = 8
    num_workers: int = 2


@dataclass
class TrainConfig:
    steps: int = 20000
    max_minutes: float = 0.0
    lr: float = 3e-4
    betas: Tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.01
    warmup_steps: int = 500
    lr_decay: str = "cosine"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    disc: Tuple[str, ...] = ()
    disc_start_step: int = 0
    disc_lr: float = 3e-4
    disc_filters: int = 32             # the discriminators' width (cost grows as its square)
    adv_loss: str = "hinge"
    balancer: bool = False
    # Loss weights that replace the `loss` section's from this share of the run on
    # (of train.steps, or of the time budget if that ends first): e.g. a waveform term
    # to learn the phase, then a spectral one to shape the noise.
    late_loss: Dict[str, float] = field(default_factory=dict)
    late_loss_from: float = 1.0
    # The band_snr term's resolution: mel bands, and frame length in seconds.
    band_snr_bands: int = 32
    band_snr_seconds: float = 0.04
    # The share of items whose decoded audio the losses score with each band brought to
    # the input's levels, as decoding with coding.band_levels hands it out: the decoder
    # then spends itself on what the levels do not carry. 0: none.
    loss_at_band_levels: float = 0.0
    best: str = "mel_distance"
    log_every: int = 25
    valid_every: int = 500
    checkpoint_every: int = 500
    keep_last: int = 3
    max_bad_steps: int = 20
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0
    adapt_threads: bool = True
    valid_audio_clips: int = 3
    listen_seconds: float = 5.0        # length of those clips, from validation files
    valid_kbps: Tuple[float, ...] = (1.5, 3.0, 6.0)
    # Start from another model's weights (a run, checkpoint or exported file) instead of
    # random ones; a run that has checkpoints resumes from them instead.
    init_from: Optional[str] = None
    # Parts whose weights (and, for the quantizer, codebooks) do not train.
    freeze: Tuple[str, ...] = ()
    # Decay of an average of the generator's weights that validation, best/ and the
    # checkpoints' model files hold (e.g. 0.999); null or 0: off.
    weight_ema: Optional[float] = None
    # Experimental (no recipe uses them; each costs nothing at its default):
    # snr, band_snr and rms count only frequencies below this; null: all.
    waveform_max_hz: Optional[float] = None
    # The loss.excess term counts bin powers down to this many dB under each item's mean.
    excess_floor_db: float = 60.0
    # With a spectral model, from this frequency up (Hz; 0: everywhere) the waveform
    # terms (l1, snr, band_snr) train the decoder's phase only, and its magnitudes learn
    # from the other terms; null: off.
    waveform_phase_only_hz: Optional[float] = None


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    coding: CodingConfig = field(default_factory=CodingConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run_dir: str = "exp/run"


class ConfigError(CodecError, ValueError):
    """A configuration that cannot be used; the message names the key."""


def model_config(preset: str = "base", **overrides: Any) -> ModelConfig:
    """The ModelConfig of a named preset, with keyword overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r}; choices: {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown model setting(s) {unknown}; known: {sorted(fields)}")
    return ModelConfig(**{**PRESETS[preset], **overrides, "preset": preset})


def _read_yaml_chain(path: Path, seen: tuple[Path, ...] = ()) -> list[Any]:
    """The YAML at ``path`` preceded by its ``base:`` ancestors, oldest first."""
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(map(str, seen + (path,)))
        raise ConfigError(f"config files inherit in a loop: {chain}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        node = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError, OSError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"{path}: not a readable YAML config ({first_line})") from None
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values")
    base = node.pop("base", None)
    if base is not None and not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must name a config file, got {base!r:.80}")
    chain = _read_yaml_chain(path.parent / base, seen + (path,)) if base else []
    return chain + [node]


def load_config(paths: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> Config:
    """Merge YAML files (each with its bases) and dotted overrides onto the schema."""
    layers = [node for p in paths for node in _read_yaml_chain(Path(p))]
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"overrides must look like key=value, got {bad}")
    layers.append(OmegaConf.from_dotlist(list(overrides)))
    for layer in layers:
        _move_coding_keys(layer)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), *layers)
        # Presets sit under the user's settings: rebuild with the preset's values first.
        preset = merged.model.preset
        if preset not in PRESETS:
            raise ConfigError(f"unknown model preset {preset!r}; choices: {sorted(PRESETS)}")
        schema = OmegaConf.structured(Config)
        schema.model = OmegaConf.merge(schema.model, PRESETS[preset])
        return OmegaConf.to_object(OmegaConf.merge(schema, *layers))
    except OmegaConfBaseException as error:
        raise ConfigError(f"bad config: {error}".splitlines()[0]
                          + f" (key: {getattr(error, 'full_key', '?')})") from None


def _move_coding_keys(layer: DictConfig) -> None:
    """Move coding settings a config still gives under ``model`` (where they were before
    they had a section of their own) to ``coding``, with a warning naming the new keys."""
    model = layer.get("model")
    if not isinstance(model, DictConfig):
        return
    moved = [key for key in list(model.keys()) if key in CODING_FIELDS]
    if not moved:
        return
    if "coding" not in layer:
        layer.coding = {}
    for key in moved:
        layer.coding[key] = model.pop(key)
    warnings.warn(f"model.{', model.'.join(moved)}: coding settings now live in the coding "
                  f"section (coding.{', coding.'.join(moved)}); read them from there",
                  stacklevel=3)


def config_from_arguments(items: Sequence[str]) -> Config:
    """The config of a command line's ``CONFIG.yaml ... key=value ...`` arguments (the
    files in order, then the overrides); ConfigError when no file is given."""
    paths = [item for item in items if "=" not in item]
    overrides = [item for item in items if "=" in item]
    if not paths:
        raise ConfigError("give a config file (e.g. recipes/base.yaml), then key=value "
                          "overrides")
    return load_config(paths, overrides)


def to_dict(config: Any) -> dict:
    """Plain dict of a config dataclass (tuples become lists), for JSON and YAML."""
    return OmegaConf.to_container(OmegaConf.structured(config))


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild a config dataclass from ``to_dict`` output, rejecting unknown keys."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), data))
    except OmegaConfBaseException as error:
        raise ConfigError(f"bad config: {str(error).splitlines()[0]}") from None


def to_yaml(config: Any) -> str:
    """The YAML text of a config dataclass (what ``codec config`` prints)."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def save_yaml(config: Any, path: str | Path) -> None:
    Path(path).write_text(to_yaml(config))
