"""``codec info``: what a preset, a model or a compressed file holds."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from codec.config import PRESETS, model_config, to_dict
from codec.errors import CodecError


def preset_summary(name: str) -> dict:
    """Parameter counts, hop, frame rate and bitrates of a named preset."""
    from codec.network.model import Codec

    model = Codec(model_config(name))
    return {
        "preset": name,
        "parameters": model.num_parameters(),
        "encoder_parameters": sum(p.numel() for p in model.encoder.parameters()),
        "decoder_parameters": sum(p.numel() for p in model.decoder.parameters()),
        "sample_rate": model.sample_rate,
        "hop_length": model.hop_length,
        "frame_rate": model.frame_rate,
        "n_q": model.config.n_q,
        "codebook_size": model.config.codebook_size,
        "kbps_per_codebook": model.bitrate(1) / 1000,
        "max_kbps": model.bitrate() / 1000,
        "config": to_dict(model.config),
    }


def _print_preset(summary: dict) -> None:
    print(f"preset {summary['preset']}: {summary['parameters']:,} parameters "
          f"(encoder {summary['encoder_parameters']:,}, decoder {summary['decoder_parameters']:,})")
    print(f"  {summary['sample_rate']} Hz, hop {summary['hop_length']} "
          f"({summary['frame_rate']:g} frames/s), {summary['n_q']} codebooks x "
          f"{summary['codebook_size']} codes: {summary['kbps_per_codebook']:g} to "
          f"{summary['max_kbps']:g} kbps")


def run(args: argparse.Namespace) -> int:
    if args.preset:
        names = sorted(PRESETS) if args.preset == "all" else [args.preset]
        summaries = [preset_summary(n) for n in names]
        if args.json:
            print(json.dumps(summaries if len(names) > 1 else summaries[0], indent=2))
        else:
            for summary in summaries:
                _print_preset(summary)
        return 0
    if not args.file:
        raise CodecError("give a compressed FILE or --preset NAME")
    from codec.coding import bitstream

    path = Path(args.file)
    if not path.is_file():
        raise CodecError(f"{path}: no such file")
    description = bitstream.describe(path)
    if args.json:
        print(json.dumps(description, indent=2))
    else:
        for key, value in description.items():
            print(f"{key}: {value}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="describe a compressed file, or a model preset",
        description="Print the header of a compressed file, or the size of a preset.")
    parser.add_argument("file", nargs="?", help="compressed file to describe")
    parser.add_argument("--preset", help="describe a model preset instead ('all' for every one)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run)
