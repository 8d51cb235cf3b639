import dataclasses
import re
from pathlib import Path

import pytest
import torch
from train_corpus import tiny_config

from codec.checkpoint import read_checkpoint
from codec.config import model_config
from codec.errors import CodecError
from codec.export import export_model
from codec.network.model import Codec
from codec.pretrained import load
from codec.train.finetune import FREEZABLE, SourceModel, read_source, transfer
from codec.train.inputs import build_datasets
from codec.train.loop import fit
from codec.train.state import start_from
from codec.train.step import train_step
from codec.train.trainer import build_trainer


@pytest.fixture(scope="module")
def source_run(corpus, tmp_path_factory) -> Path:
    """A 3-step run of the tiny model (4 codebooks): the model to start from."""
    torch.set_num_threads(1)
    _, manifests = corpus
    root = tmp_path_factory.mktemp("source")
    fit(tiny_config(root, manifests, **{"train.steps": 3}))
    return root / "run"


def _batch(config) -> torch.Tensor:
    train_set, _ = build_datasets(config)
    return torch.stack([train_set[i] for i in range(config.data.batch_size)])


def _source_model(run: Path) -> Codec:
    source = read_source(run)
    model = Codec(source.config)
    model.load_state_dict(source.state)
    return model.eval()


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_more_codebooks_keep_the_trained_ones_and_learn_the_new_ones_by_kmeans(
        corpus, source_run, tmp_path):
    _, manifests = corpus
    t = build_trainer(tiny_config(tmp_path, manifests, **{"model.n_q": 6}))
    done = start_from(t, source_run)
    assert (done.new_codebooks, done.dropped_codebooks) == ([4, 5], [])
    source = read_source(source_run).state
    for name, tensor in t.codec.state_dict().items():
        if not name.startswith(("quantizer.layers.4.", "quantizer.layers.5.")):
            assert torch.equal(tensor, source[name]), name
    new = [t.codec.quantizer.layers[i] for i in (4, 5)]
    assert not any(bool(layer.initialized) for layer in new)
    assert train_step(t, _batch(t.config))["skipped"] == 0
    assert all(bool(layer.initialized) for layer in new)  # placed on the first batch


def test_fewer_codebooks_drop_the_last_ones_and_code_as_the_source_did(
        corpus, source_run, tmp_path):
    _, manifests = corpus
    t = build_trainer(tiny_config(tmp_path, manifests, **{"model.n_q": 2}))
    done = start_from(t, source_run)
    assert (done.new_codebooks, done.dropped_codebooks) == ([], [2, 3])
    assert "n_q: 4 -> 2" in done.describe()
    audio = _batch(t.config)
    source = _source_model(source_run)
    assert torch.equal(t.codec.eval().encode(audio), source.encode(audio, 2))


@pytest.mark.parametrize("change, expected", [
    ({"model.widths": "[8,16,32,96]"}, r"expected \[96, .*found \[64, "),
    ({"model.codebook_size": 32}, r"quantizer.layers.0.embed: expected \[32, 64\], "
                                  r"found \[64, 64\]"),
])
def test_tensors_that_do_not_fit_are_one_error_listing_their_shapes(
        corpus, source_run, tmp_path, change, expected):
    _, manifests = corpus
    t = build_trainer(tiny_config(tmp_path, manifests, **change))
    before = _tensors(t.codec)
    with pytest.raises(CodecError, match=r"tensor\(s\) do not fit this model") as caught:
        start_from(t, source_run)
    message = str(caught.value)
    assert "\n" not in message and str(source_run) in message
    assert re.search(expected, message), message
    after = _tensors(t.codec)
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing copied


def test_init_from_an_exported_file_codes_as_the_export_does(corpus, source_run, tmp_path):
    _, manifests = corpus
    exported = export_model(_source_model(source_run), tmp_path / "model.safetensors")
    t = build_trainer(tiny_config(tmp_path, manifests))
    start_from(t, exported)
    loaded = load(exported)
    assert t.origin["model_id"] == loaded.model_id
    audio = _batch(t.config)
    reference = loaded.network.decode(loaded.network.encode(audio))
    t.codec.eval()
    assert torch.allclose(t.codec.decode(t.codec.encode(audio)), reference, atol=1e-5)
    assert all(bool(layer.initialized) for layer in t.codec.quantizer.layers)
    t.codec.train()
    assert train_step(t, audio)["skipped"] == 0  # and it trains on (statistics rebuilt)


def test_a_run_from_a_model_records_it_starts_fresh_and_resumes_itself(
        corpus, source_run, tmp_path):
    _, manifests = corpus
    config = tiny_config(tmp_path, manifests, **{"train.init_from": source_run,
                                                 "train.steps": 3})
    result = fit(config)
    assert result.step == 3  # the step count starts at 0, not at the source's
    origin = {"path": str(source_run / "best" / "model.safetensors"),
              "model_id": read_checkpoint(source_run / "best").meta["model_id"]}
    saved = read_checkpoint(tmp_path / "run" / "checkpoints" / "step-000003")
    assert saved.meta["init_from"] == origin
    assert read_checkpoint(tmp_path / "run" / "best").meta["init_from"] == origin
    assert saved.train_state["scheduler"]["last_epoch"] == 3
    assert f"init_from: {source_run}" in (tmp_path / "run" / "config.yaml").read_text()
    # A rerun resumes from its own checkpoint and never reads the source again.
    again = tiny_config(tmp_path, manifests, **{"train.init_from": tmp_path / "gone",
                                                "train.steps": 4})
    assert fit(again).step == 4
    resumed = read_checkpoint(tmp_path / "run" / "checkpoints" / "step-000004")
    assert resumed.meta["init_from"] == origin


def test_frozen_parts_stay_bit_identical_and_leave_the_optimiser(corpus, source_run, tmp_path):
    _, manifests = corpus
    t = build_trainer(tiny_config(tmp_path, manifests,
                                  **{"train.freeze": "[encoder,quantizer]"}))
    start_from(t, source_run)
    frozen = {**_tensors(t.codec.encoder), **_tensors(t.codec.quantizer)}
    decoder = _tensors(t.codec.decoder)
    trained = {id(p) for group in t.optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for p in t.codec.decoder.parameters()}
    audio = _batch(t.config)
    for _ in range(3):
        assert train_step(t, audio)["skipped"] == 0
    after = {**_tensors(t.codec.encoder), **_tensors(t.codec.quantizer)}
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)
    changed = _tensors(t.codec.decoder)
    assert any(not torch.equal(decoder[k], changed[k]) for k in decoder)


@pytest.mark.parametrize("freeze, message", [
    ("[encoder,vq]", re.escape(f"unknown part(s) ['vq']; choices: {list(FREEZABLE)}")),
    ("[encoder,quantizer,decoder]", "nothing would train"),
])
def test_bad_freeze_is_a_config_error(corpus, tmp_path, freeze, message):
    _, manifests = corpus
    with pytest.raises(CodecError, match=message):
        build_trainer(tiny_config(tmp_path, manifests, **{"train.freeze": freeze}))


def test_a_frozen_quantizer_with_untrained_codebooks_is_refused(corpus, source_run, tmp_path):
    _, manifests = corpus
    config = tiny_config(tmp_path, manifests, **{"train.init_from": source_run,
                                                 "model.n_q": 5,
                                                 "train.freeze": "[quantizer]"})
    with pytest.raises(CodecError, match=r"codebooks \[4\] were never trained"):
        fit(config)


def test_transfer_between_weight_norm_and_plain_convs(source_run):
    source = read_source(source_run)
    plain = Codec(dataclasses.replace(source.config, weight_norm=False))
    transfer(plain, source)
    audio = torch.randn(2, 1, 2000)
    expected = _source_model(source_run)
    assert torch.allclose(plain.eval().decode(plain.encode(audio)),
                          expected.decode(expected.encode(audio)), atol=1e-5)


def _live(level_bands: int, n_q: int) -> Codec:
    torch.manual_seed(0)
    return Codec(model_config("live", widths=(32, 32), latent_dim=16, n_q=n_q,
                              codebook_size=32, level_bands=level_bands))


def _placed(codec: Codec, audio: torch.Tensor) -> Codec:
    """``codec`` with every codebook placed by k-means on ``audio``'s latents."""
    codec.train()
    with torch.no_grad():
        codec(audio)
    return codec.eval()


def test_frame_levels_turned_on_keep_the_trained_codebooks_after_a_new_level_codebook():
    audio = torch.randn(2, 1, 24000) * 0.1
    plain = _placed(_live(level_bands=0, n_q=3), audio)
    source = SourceModel(Path("plain"), "plain", plain.config, plain.state_dict())
    levelled = _live(level_bands=6, n_q=4)
    done = transfer(levelled, source)
    assert (done.new_codebooks, done.dropped_codebooks) == ([0], [])
    assert not bool(levelled.quantizer.layers[0].initialized)
    for row in range(3):  # each trained codebook one row further on
        assert torch.equal(levelled.quantizer.layers[row + 1].embed,
                           plain.quantizer.layers[row].embed)
    _placed(levelled, audio)
    with torch.no_grad():
        assert torch.equal(levelled.encode(audio)[:, 1:], plain.encode(audio))


def test_frame_levels_turned_off_drop_the_level_codebook():
    audio = torch.randn(2, 1, 24000) * 0.1
    levelled = _placed(_live(level_bands=6, n_q=4), audio)
    source = SourceModel(Path("levelled"), "levelled", levelled.config, levelled.state_dict())
    plain = _live(level_bands=0, n_q=3).eval()
    done = transfer(plain, source)
    assert (done.new_codebooks, done.dropped_codebooks) == ([], [0])
    for row in range(3):
        assert torch.equal(plain.quantizer.layers[row].embed,
                           levelled.quantizer.layers[row + 1].embed)
    with torch.no_grad():
        assert torch.equal(plain.encode(audio), levelled.encode(audio)[:, 1:])
