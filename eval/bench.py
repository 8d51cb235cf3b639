"""Speed and memory of a codec, optionally side by side with EnCodec's architecture.

    python -m eval.bench [--preset base | --model PATH] [--threads 2] [--device cpu|cuda]
                         [--seconds 10] [--repeats 5] [--peer encodec] [--compile] [--json]
                         [--causal] [--streaming] [--onnx DIR]

For each codec it measures, after a warm-up call, the median of ``--repeats`` runs of:

- encode and decode of ``--seconds`` of audio (batch 1), as real-time factors
  (audio seconds per wall-clock second; 10 means ten times faster than real time);
- a training step on ``--batch`` x ``--segment`` s: the trainer's own
  ``codec.train.train_step`` with the default config (reconstruction losses weighted by
  the default ``LossWeights`` plus the quantiser's commitment loss, backward, gradient
  clipping, AdamW step);
- the same step with discriminators (``--disc msstft mpd``): a discriminator update
  on detached audio, then adversarial and feature-matching terms for the generator;
- memory: per measurement, the process's peak resident set and (on Linux, where the
  high-water mark can be reset) its growth above the resident set at the start, which
  is the working memory of those calls; on a GPU the same for CUDA memory allocated.
  ``peak_rss_mb`` of a codec is the largest process peak over its measurements, so it
  includes everything loaded (the other codec too).

With ``--streaming`` (a causal model: ``--causal`` makes the preset causal) it also
codes the same audio frame by frame (codec.coding.streaming), encoder then decoder for each
frame as a live call would, and reports the compute time per frame (median and 99th
percentile) against the frame's duration, the algorithmic latency, and the real-time
factor of streamed coding beside that of offline coding (encode + decode) of the same
audio by the same model.

With ``--onnx DIR`` it also times encode and decode of the same length of audio through
onnxruntime on the CPU with the same thread count, with the graphs ``codec export --onnx``
wrote in DIR (the model is exported there if DIR holds none: ``eval.onnx_speed``).

Our model is timed for inference as ``codec export`` writes it: weight norm folded into
plain conv weights. ``--peer encodec`` builds EnCodec's 24 kHz architecture with random
weights (``pip install encodec``, the ``peer`` extra) at 6 kbps, folds its weight norm
the same way, and times it in the same process, alternating with ours, so that both
see the same machine load. Its training step runs encoder -> quantiser (with its
straight-through estimator and commitment penalty) -> decoder, because
``EncodecModel.forward`` quantises without a gradient path to the encoder.
``ratios`` are ours / peer for quantities where higher is faster.

Random weights run at the speed of trained ones: nothing here depends on their values.
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import dataclasses
import functools
import gc
import json
import platform
import resource
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn

from codec.coding.streaming import StreamingDecoder, StreamingEncoder
from codec.config import PRESETS, Config, ModelConfig, TrainConfig, model_config
from codec.errors import CodecError
from codec.network.model import Codec, CodecOutput
from codec.network.nn import fold_weight_norm

PEERS = ("encodec",)
PEER_KBPS = 6.0


@dataclass
class Subject:
    """One codec under test, seen through the four calls the benchmark makes.

    encode: audio ``[1, C, T]`` -> codes (any form decode takes).
    decode: codes -> audio ``[1, C, T']``.
    trainable: what the trainer trains, seen as it sees a Codec: ``forward(audio [B, C, T])``
        gives a :class:`codec.network.model.CodecOutput` (audio, ``losses["commit"]``), and its
        ``quantizer``'s buffers are the codebooks a skipped step puts back.
    """
    name: str
    parameters: int
    sample_rate: int
    channels: int
    kbps: float
    encode: Callable[[torch.Tensor], Any]
    decode: Callable[[Any], torch.Tensor]
    trainable: nn.Module


def _compiled(module: nn.Module, enabled: bool) -> nn.Module:
    return torch.compile(module) if enabled else module


def our_subject(name: str, model: Codec, device: torch.device, compile_: bool) -> Subject:
    """Our codec: ``model`` (folded copy) for inference, a fresh one of its config to train."""
    inference = fold_weight_norm(copy.deepcopy(model)).to(device).eval()
    inference.encoder = _compiled(inference.encoder, compile_)
    inference.decoder = _compiled(inference.decoder, compile_)
    # Training starts from fresh weights: an exported model has no EMA statistics.
    trainable = Codec(model.config).to(device).train()
    # Only the conv stacks are compiled: the quantiser's data-dependent steps (k-means
    # start, dead-code revival) would break the graph anyway.
    trainable.encoder = _compiled(trainable.encoder, compile_)
    trainable.decoder = _compiled(trainable.decoder, compile_)
    return Subject(name=name, parameters=model.num_parameters(),
                   sample_rate=model.sample_rate, channels=model.config.channels,
                   kbps=model.bitrate() / 1000, encode=inference.encode,
                   decode=inference.decode, trainable=trainable)


def _remove_old_weight_norm(model: nn.Module) -> nn.Module:
    """Fold EnCodec's hook-style weight norm (``weight_g``/``weight_v``) into ``weight``."""
    for module in model.modules():
        if hasattr(module, "weight_g"):
            torch.nn.utils.remove_weight_norm(module)
    return model


class _EncodecTraining(nn.Module):
    """EnCodec as the trainer sees a Codec. Its ``forward`` runs encoder -> quantiser
    (straight-through estimator and commitment penalty) -> decoder, because
    ``EncodecModel.forward`` quantises without a gradient path to the encoder."""

    def __init__(self, model: nn.Module, compile_: bool):
        super().__init__()
        self.model, self.quantizer = model, model.quantizer
        self.encoder = _compiled(model.encoder, compile_)
        self.decoder = _compiled(model.decoder, compile_)

    def forward(self, audio: torch.Tensor) -> CodecOutput:
        result = self.quantizer(self.encoder(audio), self.model.frame_rate, self.model.bandwidth)
        decoded = self.decoder(result.quantized)[..., :audio.shape[-1]]
        return CodecOutput(decoded, result.codes, losses={"commit": result.penalty})


def encodec_subject(device: torch.device, compile_: bool) -> Subject:
    """EnCodec's 24 kHz architecture with random weights at 6 kbps."""
    try:
        from encodec import EncodecModel
    except ImportError:
        raise CodecError("--peer encodec needs the encodec package: pip install encodec "
                         "(or pip install -e '.[peer]')") from None
    with warnings.catch_warnings():  # it builds with the deprecated weight_norm
        warnings.simplefilter("ignore")
        inference = EncodecModel.encodec_model_24khz(pretrained=False)
        trainable = EncodecModel.encodec_model_24khz(pretrained=False)
    for model in (inference, trainable):
        model.set_target_bandwidth(PEER_KBPS)
    inference = _remove_old_weight_norm(inference).to(device).eval()
    inference.encoder = _compiled(inference.encoder, compile_)
    inference.decoder = _compiled(inference.decoder, compile_)
    return Subject(name="encodec", parameters=sum(p.numel() for p in inference.parameters()),
                   sample_rate=inference.sample_rate, channels=inference.channels,
                   kbps=PEER_KBPS, encode=inference.encode, decode=inference.decode,
                   trainable=_EncodecTraining(trainable.to(device).train(), compile_))


# ---------------------------------------------------------------------------
# Timing


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], repeats: int, device: torch.device) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def _summary(times: list[float], audio_seconds: float, rate_key: str) -> dict[str, float]:
    median = statistics.median(times)
    return {"median_s": median, "min_s": min(times), "repeats": len(times),
            rate_key: audio_seconds / median}


def make_train_step(subject: Subject, batch: torch.Tensor, device: torch.device,
                    disc_names: tuple[str, ...]) -> Callable[[], None]:
    """One step of the trainer's own ``codec.train.train_step`` on ``subject.trainable``
    (a discriminator update first when ``disc_names``), with the default config."""
    from codec.train.step import train_step
    from codec.train.trainer import build_trainer

    model = dataclasses.replace(ModelConfig(), sample_rate=subject.sample_rate,
                                channels=subject.channels)  # what the losses need to know
    config = Config(model=model, train=TrainConfig(disc=disc_names, device=str(device)))
    trainer = build_trainer(config, device, network=subject.trainable)
    return functools.partial(train_step, trainer, batch)


# ---------------------------------------------------------------------------
# Memory


def _release_free_memory() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc ``malloc_trim``), so that
    the next phase's memory growth is measured from what is really in use."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _current_rss_mb() -> Optional[float]:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-memory high-water mark (Linux); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


# ---------------------------------------------------------------------------
# The benchmark


def benchmark(subjects: list[Subject], *, device: torch.device, seconds: float, repeats: int,
              batch_size: int, segment_seconds: float, disc_names: tuple[str, ...],
              seed: int = 0) -> dict[str, dict]:
    """Measure every subject, metric by metric (so that load changes hit all alike)."""
    results: dict[str, dict] = {s.name: {"parameters": s.parameters, "kbps": s.kbps,
                                         "peak_rss_mb": 0.0} for s in subjects}

    def measure(subject: Subject, fn: Callable[[], Any], audio_seconds: float,
                rate_key: str) -> dict[str, Any]:
        """Timing summary plus memory: the process's peak RSS during the calls and, where
        the peak can be reset (Linux), how far it rose above the RSS at the start (the
        working memory of the calls themselves); the same for CUDA memory on a GPU."""
        _release_free_memory()
        reset = _reset_peak_rss()
        rss_before = _current_rss_mb()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            cuda_before = torch.cuda.memory_allocated(device) / 2**20
        summary = _summary(time_calls(fn, repeats, device), audio_seconds, rate_key)
        summary["peak_rss_mb"] = _peak_rss_mb()
        if reset and rss_before is not None:
            summary["rss_growth_mb"] = max(summary["peak_rss_mb"] - rss_before, 0.0)
        record = results[subject.name]
        record["peak_rss_mb"] = max(record["peak_rss_mb"], summary["peak_rss_mb"])
        if device.type == "cuda":
            summary["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            summary["cuda_growth_mb"] = summary["cuda_max_allocated_mb"] - cuda_before
            record["cuda_max_allocated_mb"] = max(record.get("cuda_max_allocated_mb", 0.0),
                                                  summary["cuda_max_allocated_mb"])
        return summary

    generator = torch.Generator().manual_seed(seed)
    inputs = {}
    for subject in subjects:
        samples = round(seconds * subject.sample_rate)
        audio = 0.1 * torch.randn(1, subject.channels, samples, generator=generator)
        inputs[subject.name] = audio.to(device)

    with torch.inference_mode():
        for subject in subjects:
            audio = inputs[subject.name]
            results[subject.name]["encode"] = measure(
                subject, functools.partial(subject.encode, audio), seconds, "rtf")
        for subject in subjects:
            codes = subject.encode(inputs[subject.name])
            results[subject.name]["decode"] = measure(
                subject, functools.partial(subject.decode, codes), seconds, "rtf")

    variants = [("train_step", ())] + ([("train_step_disc", disc_names)] if disc_names else [])
    for key, names in variants:
        for subject in subjects:
            samples = round(segment_seconds * subject.sample_rate)
            batch = 0.1 * torch.randn(batch_size, subject.channels, samples, generator=generator)
            step = make_train_step(subject, batch.to(device), device, names)
            summary = measure(subject, step, batch_size * segment_seconds,
                              "audio_seconds_per_second")
            results[subject.name][key] = {**summary, "batch": batch_size,
                                          "segment_seconds": segment_seconds}
            del step  # its optimiser and discriminators
    return results


def _frame_times(model: Codec, audio: torch.Tensor, device: torch.device,
                 postfilter: float) -> tuple[list[float], list[float]]:
    """Seconds to encode and to decode each whole frame of ``audio``, streamed."""
    encoder, hop = StreamingEncoder(model), model.hop_length
    decoder = StreamingDecoder(model, postfilter)
    encode_times, decode_times = [], []
    for start in range(0, audio.shape[-1] - hop + 1, hop):
        begin = time.perf_counter()
        codes = encoder.push(audio[..., start:start + hop])
        _synchronize(device)
        middle = time.perf_counter()
        decoder.push(codes)
        _synchronize(device)
        encode_times.append(middle - begin)
        decode_times.append(time.perf_counter() - middle)
    return encode_times, decode_times


def _milliseconds(times: list[float]) -> dict[str, float]:
    ms = sorted(1000 * t for t in times)
    return {"median": statistics.median(ms), "p99": ms[min(len(ms) - 1, int(0.99 * len(ms)))],
            "max": ms[-1]}


def streaming_benchmark(model: Codec, *, device: torch.device, seconds: float, repeats: int,
                        seed: int = 0, postfilter: float = 1.0) -> dict[str, Any]:
    """Frame-by-frame coding of ``seconds`` of audio beside offline coding of it, decoded
    through the live post-filter with exponent ``postfilter`` (1: none)."""
    if model.latency_samples is None:
        raise CodecError("--streaming needs a causal model (with a preset: add --causal)")
    model = fold_weight_norm(copy.deepcopy(model)).to(device).eval()
    generator = torch.Generator().manual_seed(seed)
    samples = round(seconds * model.sample_rate)
    audio = (0.1 * torch.randn(1, model.config.channels, samples, generator=generator)).to(device)
    frame_ms = 1000 * model.hop_length / model.sample_rate
    with torch.inference_mode():
        _frame_times(model, audio[..., :model.sample_rate], device, postfilter)  # warm-up
        encode_times, decode_times = _frame_times(model, audio, device, postfilter)
        offline = time_calls(lambda: model.decode(model.encode(audio)), repeats, device)
    both = [e + d for e, d in zip(encode_times, decode_times, strict=True)]
    coded_seconds = len(both) * model.hop_length / model.sample_rate
    return {"frames": len(both), "frame_ms": frame_ms,
            "postfilter": postfilter, "latency_samples": model.latency_samples,
            "latency_ms": 1000 * model.latency_samples / model.sample_rate,
            "encode_ms_per_frame": _milliseconds(encode_times),
            "decode_ms_per_frame": _milliseconds(decode_times),
            "codec_ms_per_frame": _milliseconds(both),
            "p99_share_of_frame": _milliseconds(both)["p99"] / frame_ms,
            "streaming_rtf": coded_seconds / sum(both),
            "offline_rtf": seconds / statistics.median(offline)}


def onnx_benchmark(model: Codec, args: argparse.Namespace) -> dict[str, Any]:
    """Encode and decode of ``args.seconds`` of audio through onnxruntime (CPU)."""
    from eval.onnx_speed import onnx_calls

    encode, decode = onnx_calls(model, args.onnx, threads=args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    samples = round(args.seconds * model.sample_rate)
    audio = (0.1 * torch.randn(1, model.config.channels, samples, generator=generator)).numpy()
    codes, cpu = encode(audio), torch.device("cpu")
    return {"folder": str(args.onnx),
            "encode": _summary(time_calls(lambda: encode(audio), args.repeats, cpu),
                               args.seconds, "rtf"),
            "decode": _summary(time_calls(lambda: decode(codes), args.repeats, cpu),
                               args.seconds, "rtf")}


def ratios(ours: dict, peer: dict) -> dict[str, float]:
    """Ours / peer for each throughput (higher means ours is faster)."""
    pairs = {"encode_rtf": ("encode", "rtf"), "decode_rtf": ("decode", "rtf"),
             "train_step": ("train_step", "audio_seconds_per_second"),
             "train_step_disc": ("train_step_disc", "audio_seconds_per_second")}
    return {name: ours[a][b] / peer[a][b] for name, (a, b) in pairs.items()
            if a in ours and a in peer}


def _load_our_model(args: argparse.Namespace) -> tuple[str, Codec, float]:
    """Its name, network and post-filter exponent (``--postfilter``, else a trained
    model's ``coding.postfilter``, else 1)."""
    exponent = 1.0 if args.postfilter is None else args.postfilter
    if args.model:
        from codec.pretrained import load

        model = load(args.model)
        if args.postfilter is None:
            exponent = model.coding.postfilter
        # A half-precision export computes in float32 anyway; time that.
        return str(args.model), model.network.float(), exponent
    if args.causal:
        return (f"{args.preset} (causal)", Codec(model_config(args.preset, causal=True)),
                exponent)
    return args.preset, Codec(model_config(args.preset)), exponent


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise CodecError("--device cuda: no CUDA device is available")
    return torch.device(name)


def run_benchmark(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = _device(args.device)
    name, model, exponent = _load_our_model(args)
    subjects = [our_subject(name, model, device, args.compile)]
    if args.peer == "encodec":
        subjects.append(encodec_subject(device, args.compile))
    disc_names = tuple(args.disc)
    if disc_names:
        try:
            import codec.network.discriminators  # noqa: F401
        except ImportError:
            warnings.warn("codec.network.discriminators is missing; skipping the step with "
                          "discriminators", stacklevel=1)
            disc_names = ()
    results = benchmark(subjects, device=device, seconds=args.seconds, repeats=args.repeats,
                        batch_size=args.batch, segment_seconds=args.segment,
                        disc_names=disc_names, seed=args.seed)
    report = {
        "settings": {"threads": torch.get_num_threads(), "device": str(device),
                     "seconds": args.seconds, "repeats": args.repeats, "batch": args.batch,
                     "segment_seconds": args.segment, "disc": list(disc_names),
                     "compile": args.compile, "torch": torch.__version__,
                     "machine": platform.machine(), "processor": _processor_name()},
        "ours": {"name": name, **results[name]},
    }
    if args.peer:
        report["peer"] = {"name": args.peer, **results[args.peer]}
        report["ratios"] = ratios(results[name], results[args.peer])
    if args.streaming:
        report["ours"]["streaming"] = streaming_benchmark(
            model, device=device, seconds=args.seconds, repeats=args.repeats, seed=args.seed,
            postfilter=exponent)
    if args.onnx:
        report["ours"]["onnxruntime"] = onnx_benchmark(model, args)
    return report


def _processor_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _field(record: dict, path: tuple[str, ...]) -> float:
    if path == ("parameters_m",):
        return record["parameters"] / 1e6
    for key in path:
        record = record[key]
    return float(record)


def _format_report(report: dict) -> str:
    s = report["settings"]
    columns = [report["ours"]] + ([report["peer"]] if "peer" in report else [])
    header = f"{'':32s}{'ours':>15s}" + (f"{report['peer']['name']:>15s}" if len(columns) > 1
                                           else "")
    if "ratios" in report:
        header += f"{'ours/peer':>12s}"
    # (label, path of the value in a codec's record, key in ratios)
    rows = [("parameters (M)", ("parameters_m",), None),
            ("encode (x real time)", ("encode", "rtf"), "encode_rtf"),
            ("decode (x real time)", ("decode", "rtf"), "decode_rtf"),
            (f"train step (s, {s['batch']} x {s['segment_seconds']:g} s)",
             ("train_step", "median_s"), None),
            ("  audio seconds per second", ("train_step", "audio_seconds_per_second"),
             "train_step")]
    if s["disc"]:
        rows += [(f"train step + {'+'.join(s['disc'])} (s)", ("train_step_disc", "median_s"),
                  None),
                 ("  audio seconds per second",
                  ("train_step_disc", "audio_seconds_per_second"), "train_step_disc")]
    rows.append(("peak RSS of the process (MB)", ("peak_rss_mb",), None))
    for key, label in (("encode", "encode"), ("decode", "decode"), ("train_step", "train step")):
        if "rss_growth_mb" in columns[0][key]:
            rows.append((f"  growth in {label} (MB)", (key, "rss_growth_mb"), None))
    if "cuda_max_allocated_mb" in columns[0]:
        rows.append(("CUDA max allocated (MB)", ("cuda_max_allocated_mb",), None))
    lines = [f"codec bench: {report['ours']['name']}; {s['seconds']:g} s of audio, "
             f"{s['threads']} thread(s), {s['device']} ({s['processor']}), "
             f"median of {s['repeats']}", header]
    for label, path, ratio_key in rows:
        line = f"{label:32s}" + "".join(f"{_field(c, path):15.2f}" for c in columns)
        if ratio_key and "ratios" in report:
            line += f"{report['ratios'][ratio_key]:12.2f}"
        lines.append(line)
    if "streaming" in report["ours"]:
        lines += _format_streaming(report["ours"]["streaming"])
    if "onnxruntime" in report["ours"]:
        lines += _format_onnx(report["ours"])
    return "\n".join(lines)


def _format_onnx(ours: dict) -> list[str]:
    result = ours["onnxruntime"]
    return [f"onnxruntime, CPU ({result['folder']}), same audio length and threads:"] + [
        f"  {key + ' (x real time)':30s}{result[key]['rtf']:15.2f}   torch: {ours[key]['rtf']:.2f}"
        for key in ("encode", "decode")]


def _format_streaming(result: dict) -> list[str]:
    rows = [("post-filter exponent", result["postfilter"]),
            ("algorithmic latency (ms)", result["latency_ms"]),
            ("frame duration (ms)", result["frame_ms"])]
    for key, label in (("encode", "encode"), ("decode", "decode"), ("codec", "encode+decode")):
        times = result[f"{key}_ms_per_frame"]
        rows += [(f"{label} per frame, median (ms)", times["median"]),
                 (f"{label} per frame, p99 (ms)", times["p99"])]
    rows += [("streamed (x real time)", result["streaming_rtf"]),
             ("offline enc+dec (x real time)", result["offline_rtf"])]
    return [f"streaming, {result['frames']} frames:"] + [f"  {label:30s}{value:15.2f}"
                                                         for label, value in rows]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--preset", default="base", choices=sorted(PRESETS),
                       help="model preset with random weights (default: base)")
    which.add_argument("--model", help="a trained model: run dir, checkpoint or exported file")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads (default 2, the setting the README quotes)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="audio length for encode and decode (default 10)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs after the warm-up; the median is reported (default 5)")
    parser.add_argument("--batch", type=int, default=8, help="training batch size (default 8)")
    parser.add_argument("--segment", type=float, default=1.0,
                        help="training segment length in seconds (default 1)")
    parser.add_argument("--disc", nargs="*", default=["msstft", "mpd"],
                        help="discriminators of the second training step (default msstft mpd); "
                        "--disc with no names skips that step")
    parser.add_argument("--peer", choices=PEERS, help="also measure this codec's architecture")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks")
    parser.add_argument("--causal", action="store_true",
                        help="make the --preset model causal (no look-ahead)")
    parser.add_argument("--streaming", action="store_true",
                        help="also time frame-by-frame coding (needs a causal model)")
    parser.add_argument("--postfilter", type=float, metavar="EXPONENT",
                        help="--streaming decodes through the live post-filter with this "
                             "exponent, 1 for none (default: a trained model's "
                             "coding.postfilter, else 1)")
    parser.add_argument("--folder", type=int, metavar="CLIPS",
                        help="instead, time coding a folder of CLIPS clips of 1-5 s: files "
                             "per second of codec encode/decode --jobs N, and of "
                             "encode_batch/decode_batch against clip by clip (eval.folder_speed)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2],
                        help="the --jobs values --folder times (default: 1 2)")
    parser.add_argument("--onnx", metavar="DIR",
                        help="also time encode and decode through onnxruntime (CPU) with the "
                             "graphs in DIR (codec export --onnx; exported there if none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.batch < 1:
        print("bench: --threads, --repeats and --batch must be at least 1", file=sys.stderr)
        return 2
    if args.seconds <= 0 or args.segment <= 0:
        print("bench: --seconds and --segment must be positive", file=sys.stderr)
        return 2
    if args.folder:
        from eval.folder_speed import folder_report, format_folder_report

        name, network, _ = _load_our_model(args)
        report = folder_report(name, network, clips=args.folder, jobs=args.jobs,
                               threads=args.threads, seed=args.seed)
        print(json.dumps(report, indent=2) if args.json else format_folder_report(report))
        return 0
    try:
        report = run_benchmark(args)
    except CodecError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else _format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
