import math
import shutil
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from train_corpus import tiny_config, tiny_overrides

from codec import cli
from codec.checkpoint import latest_checkpoint, read_checkpoint, step_dir_name
from codec.coding import band_levels
from codec.errors import CodecError
from codec.pretrained import load
from codec.train import loop as train_loop
from codec.train import state as train_state_module
from codec.train.inputs import build_datasets
from codec.train.loop import advance, fit, progress_bar
from codec.train.monitor import Monitor
from codec.train.schedule import StepBatches, lr_factor
from codec.train.step import at_band_levels, train_step
from codec.train.trainer import build_trainer

# The run the module's tests share: a discriminator that starts at step 2, so that
# resuming covers both optimisers and both schedules.
DISC = {"train.disc": "[mpd]", "train.disc_start_step": 2}


@pytest.fixture(scope="module")
def trained_run(corpus, tmp_path_factory) -> Path:
    """A finished 6-step run with checkpoints at steps 3 and 6."""
    torch.set_num_threads(1)
    _, manifests = corpus
    root = tmp_path_factory.mktemp("trained")
    fit(tiny_config(root, manifests, **DISC))
    return root / "run"


def _batch(config) -> torch.Tensor:
    train_set, _ = build_datasets(config)
    return torch.stack([train_set[i] for i in range(config.data.batch_size)])


def _state(t) -> dict[str, torch.Tensor]:
    """Every tensor a step may change: weights, codebook buffers, optimiser moments."""
    state = {f"model/{k}": v.clone() for k, v in t.codec.state_dict().items()}
    for index, moments in t.optimizer.state_dict()["state"].items():
        state.update({f"opt/{index}/{k}": v.clone() for k, v in moments.items()})
    return state


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"differ: {different[:5]}"


def test_lr_schedule_warms_up_then_decays_to_min_ratio():
    factor = dict(warmup=10, total=110, min_ratio=0.1, decay="cosine")
    assert lr_factor(0, **factor) == pytest.approx(0.1)
    assert lr_factor(9, **factor) == pytest.approx(1.0)
    assert lr_factor(60, **factor) == pytest.approx(0.55)  # half way down the cosine
    assert lr_factor(110, **factor) == pytest.approx(0.1)
    assert lr_factor(500, **factor) == pytest.approx(0.1)


def test_lr_schedule_follows_the_time_budget_when_it_runs_ahead_of_the_steps():
    factor = dict(warmup=10, total=110, min_ratio=0.1, decay="cosine")
    assert lr_factor(20, **factor, budget_used=0.5) == pytest.approx(0.55)
    assert lr_factor(20, **factor, budget_used=1.0) == pytest.approx(0.1)
    # The steps lead: the budget changes nothing.
    assert lr_factor(60, **factor, budget_used=0.1) == pytest.approx(lr_factor(60, **factor))
    assert lr_factor(5, **factor, budget_used=0.9) == pytest.approx(0.6)  # still warming up


def test_step_batches_split_each_batch_between_ranks_and_resume_at_the_step():
    ranks = [list(StepBatches(2, 4, 6, 10 ** 9, rank, 2)) for rank in (0, 1)]
    assert ranks[0] == [[12, 13, 14], [18, 19, 20]]
    assert ranks[1] == [[15, 16, 17], [21, 22, 23]]
    with pytest.raises(CodecError, match="divisible"):
        StepBatches(0, 1, 5, 100, 0, 2)


@pytest.mark.parametrize("extra", [{}, {"train.disc": "[msstft]"}], ids=["plain", "disc"])
def test_a_few_steps_lower_the_reconstruction_loss(corpus, tmp_path, extra):
    _, manifests = corpus
    config = tiny_config(tmp_path, manifests, **extra)
    t = build_trainer(config)
    audio = _batch(config)
    # 24 steps: in the first dozen the mel term, a small share of the total, can rise
    # while mrstft falls (CPUs that round differently then disagree on its sign).
    history = [train_step(t, audio) for _ in range(24)]
    assert all(logs["skipped"] == 0 for logs in history)
    for name in ("loss/total", "loss/mel", "loss/mrstft"):
        first, last = [sum(logs[name] for logs in part) / 3 for part in (history[:3],
                                                                          history[-3:])]
        assert last < first, name
    if extra:
        assert all(math.isfinite(logs["disc/loss"]) for logs in history)
        assert "loss/adv" in history[-1] and "loss/feat" in history[-1]


def test_optimizers_use_the_fused_kernel_on_a_cpu(corpus, tmp_path):
    _, manifests = corpus
    t = build_trainer(tiny_config(tmp_path, manifests, **{"train.disc": "[msstft]"}))
    assert t.optimizer.defaults["fused"] and t.disc_optimizer.defaults["fused"]


def test_late_loss_replaces_the_named_weights_from_its_share_of_the_run(corpus, tmp_path):
    _, manifests = corpus
    config = tiny_config(tmp_path, manifests, **{
        "train.steps": 10, "train.late_loss_from": 0.5, "loss.snr": 2.0,
        "train.late_loss.snr": 0.0, "train.late_loss.band_snr": 3.0})
    t = build_trainer(config)
    audio = _batch(config)
    history = []
    for _ in range(6):
        history.append(train_step(t, audio))
        t.step += 1
    assert [logs["late_loss"] for logs in history] == [0, 0, 0, 0, 0, 1]
    late = t.loss_weights()
    assert (late.snr, late.band_snr, late.mel) == (0.0, 3.0, config.loss.mel)
    assert config.loss.snr == 2.0  # the loss section itself is left as it was
    t.step, t.config.train.max_minutes, t.trained_seconds = 0, 10.0, 300.0
    assert t.loss_weights().band_snr == 3.0  # half the time budget counts too


def test_losses_at_band_levels_score_the_output_brought_to_the_inputs_levels(corpus, tmp_path):
    _, manifests = corpus
    overrides = {"coding.band_levels": 8, "train.loss_at_band_levels": 1.0}
    config = tiny_config(tmp_path, manifests, **overrides)
    t = build_trainer(config)
    audio = _batch(config)
    decoded = t.codec(audio).audio.detach()
    matched, again = at_band_levels(t, [decoded, decoded.clone()], audio)
    assert torch.equal(matched, again)  # the outputs of one pass: the same items chosen
    grid = band_levels.grid_for(config.coding, t.codec.sample_rate, t.codec.hop_length,
                                config.data.target_lufs)
    rows = audio.reshape(-1, audio.shape[-1])
    expected = band_levels.apply_levels(decoded.reshape(rows.shape),
                                        band_levels.measure(rows, grid), grid)
    assert torch.allclose(matched.reshape(rows.shape), expected, atol=1e-4)
    assert not torch.allclose(matched, decoded, atol=1e-3)
    logs = train_step(t, audio)
    assert math.isfinite(logs["loss/total"]) and logs["skipped"] == 0
    t.config.train.loss_at_band_levels = 0.0
    assert at_band_levels(t, [decoded], audio)[0] is decoded


# A spectral model shrunk for the tiny corpus: hop 40, frames of 160 samples (100 Hz bins).
SPECTRAL = {"model.preset": "spectral", "model.strides": "[40]", "model.widths": "[16,16]",
            "model.n_fft": 160, "model.dilations": "[1]", "model.latent_dim": 8}


def test_waveform_terms_on_the_phase_path_score_the_same_and_train_the_decoder_otherwise(
        corpus, tmp_path):
    """From the same weights and batch, the snr term has the same value with and without
    the phase-only path, but its gradient into the decoder's last layer differs."""
    _, manifests = corpus
    only_snr = {"loss.mrstft": 0.0, "loss.mel": 0.0, "loss.l1": 0.0, "loss.rms": 0.0,
                "loss.snr": 1.0}
    values, grads = [], []
    for extra in ({}, {"train.waveform_phase_only_hz": 1000.0}):
        t = build_trainer(tiny_config(tmp_path, manifests, **SPECTRAL, **only_snr, **extra))
        audio = _batch(t.config)
        torch.manual_seed(0)  # the same codebook initialisation in both runs
        logs = train_step(t, audio)
        assert logs["skipped"] == 0
        values.append(logs["loss/snr"])
        grads.append(t.codec.decoder.layers[-1].conv.bias.grad.clone())
    assert values[0] == pytest.approx(values[1], rel=1e-5)
    assert not torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize("extra, message", [
    ({"train.waveform_phase_only_hz": -1.0}, "a frequency in Hz"),
    ({"train.waveform_phase_only_hz": 1000.0}, "needs a spectral model"),
    ({"train.waveform_phase_only_hz": 1000.0, "train.balancer": True, **SPECTRAL},
     "cannot be used with train.balancer"),
    ({"train.late_loss.snrr": 1.0}, "unknown loss name"),
    ({"train.late_loss.snr": 1.0, "train.late_loss_from": 1.5}, "in \\[0, 1\\]"),
    ({"train.late_loss.snr": 1.0, "train.balancer": True}, "balancer"),
    ({"train.waveform_max_hz": -1.0}, "train.waveform_max_hz"),
    ({"train.band_snr_bands": 0}, "train.band_snr_bands"),
    ({"train.band_snr_seconds": 0.0}, "train.band_snr_seconds"),
    ({"train.excess_floor_db": 0.0}, "train.excess_floor_db"),
    ({"train.loss_at_band_levels": 1.5}, "loss_at_band_levels is a share"),
    ({"train.loss_at_band_levels": 0.5}, "needs levels"),
])
def test_late_loss_that_cannot_apply_is_a_config_error(corpus, tmp_path, extra, message):
    _, manifests = corpus
    with pytest.raises(CodecError, match=message):
        build_trainer(tiny_config(tmp_path, manifests, **extra))


@pytest.mark.parametrize("extra, message", [
    ({"train.log_every": 0}, "train.log_every must be at least 1"),
    ({"train.valid_every": 0}, "train.valid_every must be at least 1"),
    ({"train.checkpoint_every": 0}, "train.checkpoint_every must be at least 1"),
    ({"data.batch_size": 0}, "data.batch_size must be at least 1"),
    ({"data.segment_seconds": "nan"}, "data.segment_seconds must be a positive number"),
    ({"train.lr": "nan"}, "train.lr must be a positive number"),
    ({"train.steps": -5}, "train.steps must be 0 or more"),
    ({"train.max_minutes": "inf"}, "train.max_minutes must be 0 or more"),
    ({"model.codebook_size": 16777216, "model.latent_dim": 4096}, "model.codebook_size"),
])
def test_settings_no_run_can_use_are_one_line_before_any_work(corpus, tmp_path, extra,
                                                               message):
    """Each is refused by fit itself, before data is read or a model is built."""
    _, manifests = corpus
    with pytest.raises(CodecError, match=message):
        fit(tiny_config(tmp_path, manifests, **extra))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("best, step", [("mel_distance", 3), ("latest", 9)])
def test_best_holds_the_lowest_score_or_the_newest_model(corpus, tmp_path, monkeypatch,
                                                          best, step):
    def worse_every_time(t, clips, monitor, listening=()):  # scores that only get worse
        return {"valid/score": float(t.step), "valid/snr": 0.0, "valid/rms_ratio": 1.0}

    monkeypatch.setattr(train_loop, "validate", worse_every_time)
    _, manifests = corpus
    fit(tiny_config(tmp_path, manifests, **{"train.best": best, "train.steps": 9}))
    assert read_checkpoint(tmp_path / "run" / "best", train_state=False).step == step


def test_unknown_best_is_a_config_error(corpus, tmp_path):
    _, manifests = corpus
    with pytest.raises(CodecError, match="train.best must be one of"):
        build_trainer(tiny_config(tmp_path, manifests, **{"train.best": "snr"}))


def test_non_finite_loss_is_skipped_without_touching_any_state(corpus, tmp_path, monkeypatch):
    _, manifests = corpus
    config = tiny_config(tmp_path, manifests, **{"train.max_bad_steps": 2})
    t = build_trainer(config)
    audio = _batch(config)
    train_step(t, audio)  # initialise codebooks and optimiser moments
    before = _state(t)
    recon = t.recon.forward

    def nan_mel(estimate, reference, **options):
        losses = recon(estimate, reference, **options)
        return losses | {"mel": losses["mel"] * math.nan}

    monkeypatch.setattr(t.recon, "forward", nan_mel)
    assert train_step(t, audio)["skipped"] == 1
    _assert_same(before, _state(t))
    assert t.skipped_steps == 1
    with pytest.raises(CodecError, match="2 steps in a row .* non-finite"):
        train_step(t, audio)


def test_non_finite_encoder_output_leaves_the_codebooks_as_they_were(corpus, tmp_path):
    # The EMA codebook update happens inside the forward pass, before the loss exists.
    _, manifests = corpus
    t = build_trainer(tiny_config(tmp_path, manifests))
    audio = _batch(t.config)
    train_step(t, audio)
    before = _state(t)
    hook = t.codec.encoder.register_forward_hook(lambda module, args, out: out * math.nan)
    assert train_step(t, audio)["skipped"] == 1
    hook.remove()
    _assert_same(before, _state(t))
    assert train_step(t, audio)["skipped"] == 0  # and training goes on


def test_rerun_after_a_kill_matches_the_uninterrupted_run(trained_run, tmp_path, corpus):
    _, manifests = corpus
    # Simulate a kill after the step-3 checkpoint: the step-6 checkpoint never got written.
    shutil.copytree(trained_run, tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-000006")
    result = fit(tiny_config(tmp_path, manifests, **DISC))
    assert result.step == 6
    for name in ("model.safetensors", "train_state.safetensors"):
        resumed = load_file(tmp_path / "run" / "checkpoints" / "step-000006" / name)
        uninterrupted = load_file(trained_run / "checkpoints" / "step-000006" / name)
        _assert_same(uninterrupted, resumed)
    meta = read_checkpoint(tmp_path / "run" / "checkpoints" / "step-000006").meta
    assert meta["train_state"]["scheduler"]["last_epoch"] == 6
    assert meta["train_state"]["disc_scheduler"]["last_epoch"] == 4  # disc starts at step 2


def test_corrupted_newest_checkpoint_falls_back_to_the_previous_one(trained_run, tmp_path,
                                                                     corpus):
    _, manifests = corpus
    shutil.copytree(trained_run, tmp_path / "run")
    newest = tmp_path / "run" / "checkpoints" / "step-000006" / "train_state.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="step-000006.*damaged"):
        result = fit(tiny_config(tmp_path, manifests, **DISC, **{"train.steps": 7}))
    assert result.step == 7  # resumed from step 3, not from scratch and not from 6


def test_time_budget_stops_the_run_and_a_rerun_counts_the_time_spent(corpus, tmp_path):
    _, manifests = corpus
    config = tiny_config(tmp_path, manifests, **{"train.steps": 10_000,
                                                 "train.max_minutes": 0.001})
    result = fit(config)
    assert result.stopped == "time" and 0 < result.step < 10_000
    meta = latest_checkpoint(tmp_path / "run").meta
    assert meta["train_state"]["trained_seconds"] >= 0.06
    again = fit(config)
    assert again.stopped == "done" and again.step == result.step


@pytest.mark.parametrize("minutes", [0, 2])
def test_progress_bar_follows_the_time_budget_and_refreshes_every_step(corpus, tmp_path,
                                                                         minutes):
    _, manifests = corpus
    config = tiny_config(tmp_path, manifests,
                         **{"train.steps": 1000, "train.max_minutes": minutes})
    t = SimpleNamespace(config=config, step=0, trained_seconds=0.0)
    bar, postfix = progress_bar(t, enabled=True), {}  # a disabled bar counts nothing
    assert bar.total == (120 if minutes else 1000)  # seconds of the budget, or steps
    for step in (1, 2, 3):
        t.step, t.trained_seconds = step, 10.0 * step
        advance(bar, t, postfix)
        if minutes:  # the bar and the time left move with the clock at every step
            assert bar.n == 10.0 * step
            assert postfix["left"] == f"{(120 - 10 * step) / 60:.1f}min"
            assert postfix["step"] == f"{step}/1000"
        else:
            assert bar.n == step and "left" not in postfix
    bar.close()


def test_run_that_is_done_does_not_train_again(trained_run, tmp_path, corpus):
    _, manifests = corpus
    shutil.copytree(trained_run, tmp_path / "run")
    result = fit(tiny_config(tmp_path, manifests, **DISC))
    assert result.stopped == "done" and result.step == 6


def test_model_config_mismatch_names_the_field(trained_run, tmp_path, corpus):
    _, manifests = corpus
    shutil.copytree(trained_run, tmp_path / "run")
    with pytest.raises(CodecError, match=r"n_q: 4 != 2"):
        fit(tiny_config(tmp_path, manifests, **DISC, **{"model.n_q": 2}))


def test_trained_run_loads_as_a_model(trained_run):
    model = load(trained_run)
    best = read_checkpoint(trained_run / "best", train_state=False)
    assert model.model_id == best.meta["model_id"]
    assert not model.network.training
    assert (trained_run / "config.yaml").is_file()
    assert best.meta["metrics"]["valid/score"] == pytest.approx(
        min(read_checkpoint(p, train_state=False).meta["metrics"]["valid/score"]
            for p in sorted((trained_run / "checkpoints").iterdir())))


def test_checkpoints_record_provenance_and_wall_time(trained_run):
    from codec import __version__

    for folder in (trained_run / "best", latest_checkpoint(trained_run).path):
        meta = read_checkpoint(folder, train_state=False).meta
        invocation, = meta["provenance"]
        assert invocation["versions"]["codec"] == __version__
        assert invocation["versions"]["torch"] == torch.__version__.split("+")[0]
        assert invocation["command"]  # whatever ran the tests
        assert meta["trained_seconds"] > 0 and meta["skipped_steps"] == 0


def test_tensorboard_has_losses_validation_audio_and_images(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained_run / "tb"), size_guidance={"audio": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    for tag in ("train/loss/total", "train/loss/mel", "train/loss/commit", "train/loss/adv",
                "train/lr", "train/grad_norm", "train/disc/loss", "train/disc/grad_norm",
                "train/audio_seconds_per_second", "train/skipped_steps",
                "codebook/train/0/perplexity", "codebook/train/3/revived",
                "valid/snr", "valid/si_sdr", "valid/rms_ratio", "valid/mel_distance",
                "valid/peak", "valid/score", "valid/2.4kbps/snr",
                "codebook/valid/0/usage", "codebook/valid/3/perplexity"):
        assert tag in tags["scalars"], tag
    assert not [t for t in tags["scalars"] if "codebook/" in t and not t.startswith(
        ("codebook/train/", "codebook/valid/", "latent/codebook/"))]  # one scheme
    assert [e.step for e in events.Scalars("train/loss/total")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events.Scalars("valid/snr")] == [3, 6]
    audio_tags = [t for t in sorted(tags["audio"]) if t.startswith("audio/0/")]
    assert audio_tags == ["audio/0/0_original", "audio/0/1_2.4kbps", "audio/0/1_4.8kbps",
                          "audio/0/1_9.6kbps"]  # the original sorts first
    # Listening clips are whole validation files (2 s here), not 0.125 s training crops.
    assert events.Audio("audio/0/0_original")[0].length_frames == 2 * 16000
    for tag in ("mel/0/0_original", "mel/0/1_9.6kbps"):
        assert tag in tags["images"], tag
        assert events.Images(tag)[0].width >= 400


def test_tensorboard_hparams_hold_the_settings_and_final_validation_metrics(trained_run):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    found: dict[str, HParamsPluginData] = {}
    for path in sorted((trained_run / "tb").glob("events*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag.startswith("_hparams_/"):
                    found[value.tag] = HParamsPluginData.FromString(
                        value.metadata.plugin_data.content)
    session = found["_hparams_/session_start_info"].session_start_info
    assert session.hparams["train.steps"].number_value == 6
    assert session.hparams["model.preset"].string_value == "tiny"
    metrics = {m.name.tag for m in found["_hparams_/experiment"].experiment.metric_infos}
    assert {"valid/snr", "valid/mel_distance", "valid/score"} <= metrics


def test_tensorboard_has_latent_diagnostics_at_each_validation(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from codec.train.latents import FIGURES

    events = EventAccumulator(str(trained_run / "tb"), size_guidance={"images": 0})
    events.Reload()
    for tag in ("latent/relevance_r2", "latent/gaussian_rate_bits", "latent/dims_90",
                "latent/codebook/3/entropy_bits"):
        assert [e.step for e in events.Scalars(tag)] == [3, 6], tag
    # the tiny run's 4 codebooks of 64 codes: 6 bits each
    assert [e.value for e in events.Scalars("latent/nominal_bits")] == [24, 24]
    for name in FIGURES:
        assert [e.step for e in events.Images(name)] == [3, 6], name


def test_training_logs_without_the_eval_package(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "eval", None)  # as if only the library were installed
    monitor = Monitor(tmp_path / "tb")
    crops = torch.randn(4, 1, 2400)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the library logs them itself: nothing to warn about
        monitor.latent_diagnostics(tiny_model, crops, step=1)
        monitor.latent_diagnostics(tiny_model, crops, step=2)
    assert [h["step"] for h in monitor.latent_history] == [1, 2]
    monitor.close()


def test_cli_trains_and_reports_bad_config(corpus, tmp_path, capsys):
    _, manifests = corpus
    overrides = tiny_overrides(tmp_path, manifests, **{"train.steps": 2})
    base = Path(__file__).parents[2] / "recipes" / "base.yaml"
    assert cli.main(["train", str(base), *overrides]) == 0
    assert (tmp_path / "run" / "checkpoints" / "step-000002").is_dir()
    assert cli.main(["train", str(base), *overrides, "train.lr_decay=sideways"]) == 2
    assert "train.lr_decay" in capsys.readouterr().err


@pytest.fixture(scope="module")
def averaged_run(corpus, tmp_path_factory) -> Path:
    """A finished 6-step run with train.weight_ema, checkpoints at steps 3 and 6."""
    _, manifests = corpus
    root = tmp_path_factory.mktemp("averaged")
    fit(tiny_config(root, manifests, **{"train.weight_ema": 0.9}))
    return root / "run"


def test_weight_average_survives_a_kill_and_resume(averaged_run, tmp_path, corpus):
    _, manifests = corpus
    shutil.copytree(averaged_run, tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-000006")
    restored = build_trainer(tiny_config(tmp_path, manifests, **{"train.weight_ema": 0.9}))
    step3 = latest_checkpoint(tmp_path / "run")
    train_state_module.restore(restored, step3)
    _assert_same(step3.model_state, restored.validated_model().state_dict())
    _assert_same(step3.train_state["weight_average"]["trained_model"], restored.codec.state_dict())
    assert restored.weight_average.updates == 3

    assert fit(tiny_config(tmp_path, manifests, **{"train.weight_ema": 0.9})).step == 6
    for name in ("model.safetensors", "train_state.safetensors"):
        resumed = load_file(tmp_path / "run" / "checkpoints" / "step-000006" / name)
        uninterrupted = load_file(averaged_run / "checkpoints" / "step-000006" / name)
        _assert_same(uninterrupted, resumed)


def test_best_and_export_hold_the_weight_average(averaged_run):
    best = read_checkpoint(averaged_run / "best", train_state=False)
    step = read_checkpoint(averaged_run / "checkpoints" / step_dir_name(best.step))
    trained = step.train_state["weight_average"]["trained_model"]
    _assert_same(step.model_state, best.model_state)
    name = next(k for k in trained if k.endswith("original1"))
    assert not torch.equal(trained[name], best.model_state[name])  # an average, not the last
    model = load(averaged_run)  # what codec export and codec encode load
    assert torch.equal(model.network.state_dict()[name], best.model_state[name])


def test_tensorboard_shows_the_averaged_and_the_trained_weights(averaged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(averaged_run / "tb"))
    events.Reload()
    averaged = [e.value for e in events.Scalars("valid/snr")]
    trained = [e.value for e in events.Scalars("valid_raw/snr")]
    assert len(averaged) == len(trained) == 2 and averaged != trained
    assert "valid_raw/2.4kbps/mel_distance" in events.Tags()["scalars"]


def test_weight_ema_outside_zero_one_is_a_config_error(corpus, tmp_path):
    _, manifests = corpus
    with pytest.raises(CodecError, match=r"train.weight_ema is a decay in \[0, 1\)"):
        build_trainer(tiny_config(tmp_path, manifests, **{"train.weight_ema": 1.0}))


@pytest.mark.parametrize("weights, built", [
    ({}, False), ({"loss.stoi": 1.0}, True), ({"train.late_loss.stoi": 1.0}, True)])
def test_stoi_term_is_computed_only_when_some_phase_weighs_it(corpus, tmp_path, weights,
                                                              built):
    _, manifests = corpus
    config = tiny_config(tmp_path, manifests, **{"data.segment_seconds": 0.5, **weights})
    t = build_trainer(config)
    assert (t.recon.stoi is not None) == built
    logs = train_step(t, _batch(config))
    assert ("loss/stoi" in logs) == built
