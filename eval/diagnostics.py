"""What the encoder's latents carry, and how that changes over training.

    python -m eval.diagnostics RUN_DIR [--data MANIFEST_OR_DIR] [-o OUT] [--crops 32]

For every checkpoint of a run, on the same fixed crops (the run's validation
manifest unless ``--data`` names another), this measures the latent diagnostics of
``codec.train.latents`` (variance and PCA spectrum of the latents, Gaussian entropy and
rate, code usage entropy, relevance to the log-mel spectrum), draws each against the
step, and writes diagnostics.json, one PNG per figure and an HTML page. Training logs
the same figures at validation time (``codec.train.monitor``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from codec.errors import CodecError
from codec.train.latents import diagnostic_figures, latent_diagnostics

# ---------------------------------------------------------------------------
# Over a run's checkpoints


def load_crops(data: str | Path, model, count: int, seconds: float,
               target_lufs: float | None) -> torch.Tensor:
    """``count`` fixed crops ``[count, C, T]`` at the model's rate, normalised as in
    training. A manifest gives the same crops validation uses; a folder, the loudest
    stretch of each of its first files."""
    from codec.audio import loudness, loudness_gain, peak, read_audio, resample, to_channels
    from codec.train.data import ValidCrops
    from eval.dataset import list_items
    from eval.excerpts import loudest_window

    data = Path(data)
    if data.suffix == ".jsonl":
        crops = ValidCrops(data, model.sample_rate, model.config.channels, count=count,
                           segment_seconds=seconds, target_lufs=target_lufs)
        return torch.stack([crops[i] for i in range(len(crops))])
    length = int(seconds * model.sample_rate)
    crops = []
    for item in list_items(data, max_files=count):
        audio, rate = read_audio(item.path)
        audio = to_channels(resample(audio, rate, model.sample_rate), model.config.channels)
        start = loudest_window(audio, length)
        audio = torch.nn.functional.pad(audio[..., start:start + length],
                                        (0, max(0, length - audio.shape[-1])))
        if target_lufs is not None:
            audio = audio * loudness_gain(loudness(audio, model.sample_rate), target_lufs,
                                          peak(audio))
        crops.append(audio)
    if len(crops) < 2:
        raise CodecError(f"{data}: the relevance probe needs at least 2 files, found "
                         f"{len(crops)}")
    return torch.stack(crops)


def run_diagnostics(run_dir: str | Path, out_dir: str | Path, *, data: str | None = None,
                    crops: int = 32, seconds: float = 2.0, device: str = "cpu") -> list[dict]:
    """Diagnostics of every checkpoint in ``run_dir`` (oldest first), written to
    ``out_dir`` as diagnostics.json, one PNG per figure and index.html."""
    from codec.checkpoint import list_checkpoints, read_checkpoint
    from codec.pretrained import load
    from eval.results import write_json

    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise CodecError(f"{run_dir}: no checkpoints (expected {run_dir}/checkpoints/step-*)")
    config = read_checkpoint(checkpoints[-1], train_state=False).meta["config"]
    data = data or config["data"].get("valid") or None
    if not data:
        raise CodecError(f"{run_dir}: the run has no validation manifest; pass --data")
    target = config["data"].get("target_lufs")
    history, audio = [], None
    for path in tqdm(checkpoints, desc="diagnostics", unit="checkpoint", disable=None):
        model = load(path, device=device).network
        if audio is None:
            audio = load_crops(data, model, crops, seconds, target)
        step = read_checkpoint(path, train_state=False).step
        history.append({"step": step, "checkpoint": path.name,
                        **latent_diagnostics(model, audio)})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "diagnostics.json",
               {"run": str(run_dir), "data": str(data), "crops": int(audio.shape[0]),
                "seconds": seconds, "history": history})
    images = {}
    for name, figure in diagnostic_figures(history).items():
        path = out_dir / (name.replace("/", "_") + ".png")
        figure.savefig(path)
        images[name] = path
    write_page(out_dir, history, images, run_dir, data)
    return history


def write_page(out_dir: Path, history: list[dict], images: dict[str, Path], run_dir, data) -> None:
    from eval.report import image_tag, page, table_html

    names = ["latent/dims_90", "latent/dims_99", "latent/gaussian_entropy_bits",
             "latent/gaussian_rate_bits", "latent/code_entropy_bits", "latent/nominal_bits",
             "latent/relevance_r2"]
    rows = [[h["step"]] + [h["scalars"][n] for n in names] for h in history]
    sections = [f'<p class="note">Run {run_dir}; crops from {data}. See the docstring of '
                "codec/train/latents.py for what each figure measures.</p>",
                table_html(["step"] + [n.split("/", 1)[1] for n in names], rows),
                '<div class="plots">' + "".join(image_tag(p, n) for n, p in images.items())
                + "</div>"]
    (out_dir / "index.html").write_text(page("Latent diagnostics", sections), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.diagnostics",
                                     description="Latent diagnostics over a run's checkpoints.")
    parser.add_argument("run_dir")
    parser.add_argument("--data", default=None,
                        help="manifest or folder for the crops (default: the run's valid set)")
    parser.add_argument("-o", "--out", default=None,
                        help="output folder (default: RUN_DIR/diagnostics)")
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each crop")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    out = Path(args.out or Path(args.run_dir) / "diagnostics")
    try:
        history = run_diagnostics(args.run_dir, out, data=args.data, crops=args.crops,
                                  seconds=args.seconds, device=args.device)
    except CodecError as error:
        print(f"eval.diagnostics: error: {error}", file=sys.stderr)
        return 2
    for h in history:
        s = h["scalars"]
        print(f"step {h['step']:>7}: dims90 {s['latent/dims_90']:>3}  "
              f"rate {s['latent/gaussian_rate_bits']:7.1f} b/frame  "
              f"codes {s['latent/code_entropy_bits']:6.1f}/{s['latent/nominal_bits']:g} b  "
              f"R2 {s['latent/relevance_r2']:.3f}")
    print(f"report: {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
