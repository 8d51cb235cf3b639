"""Compare one decoded file with its original.

    python -m eval.compare ORIGINAL.wav DECODED.wav [--speech] [--json]

Prints SNR, SI-SDR, RMS ratio, log-mel and STFT distances and the delay found
between the two (undone before measuring), and PESQ/STOI with ``--speech``. The
decoded file is resampled to the original's rate if they differ. Exit status 2 for
unreadable or mismatched files.
"""
from __future__ import annotations

import argparse
import json
import sys

from codec import metrics
from codec.audio import read_audio, resample, to_channels
from codec.errors import CodecError
from eval.results import format_number, jsonable

LINES = (("SNR", "snr", "dB"), ("SI-SDR", "si_sdr", "dB"), ("RMS ratio", "rms_ratio", ""),
         ("mel distance", "mel_distance", ""), ("STFT distance", "stft_distance", ""),
         ("PESQ", "pesq", ""), ("STOI", "stoi", ""))


def compare_files(original: str, decoded: str, *, speech: bool = False) -> dict:
    """Every metric of ``decoded`` against ``original`` (see :func:`codec.metrics.measure`)."""
    reference, rate = read_audio(original)
    estimate, decoded_rate = read_audio(decoded)
    estimate = resample(estimate, decoded_rate, rate)
    if estimate.shape[0] != reference.shape[0]:
        try:
            estimate = to_channels(estimate, reference.shape[0])
        except CodecError:
            raise CodecError(f"{decoded} has {estimate.shape[0]} channels, {original} has "
                             f"{reference.shape[0]}") from None
    if min(reference.shape[-1], estimate.shape[-1]) == 0:
        raise CodecError(f"{original if reference.shape[-1] == 0 else decoded}: no samples")
    result = metrics.measure(reference, estimate, rate, speech=speech)
    result["sample_rate"] = rate
    return result


def format_result(result: dict) -> str:
    lines = []
    for label, key, unit in LINES:
        if key in result:
            lines.append(f"{label:<14} {format_number(result[key])}{' ' + unit if unit else ''}")
    delay = result["delay_samples"]
    lines.append(f"{'delay':<14} {delay} samples ({1000 * delay / result['sample_rate']:.2f} ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.compare",
                                     description="Metrics of a decoded file against its original.")
    parser.add_argument("original")
    parser.add_argument("decoded")
    parser.add_argument("--speech", action="store_true", help="add PESQ and STOI")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        result = compare_files(args.original, args.decoded, speech=args.speech)
    except CodecError as error:
        print(f"eval.compare: error: {error}", file=sys.stderr)
        return 2
    if args.speech and metrics.missing_speech_packages():
        print(f"note: PESQ/STOI need {', '.join(metrics.missing_speech_packages())} "
              f"(pip install '.[speech]')", file=sys.stderr)
    print(json.dumps(jsonable(result)) if args.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
