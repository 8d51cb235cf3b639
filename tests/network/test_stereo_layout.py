import pytest
import torch

from codec import Codec, compress, model_config
from codec.coding.streaming import StreamingDecoder, StreamingEncoder
from codec.config import ConfigError
from codec.network import stereo
from codec.network.model import _id_fields, compute_model_id
from codec.pretrained import PretrainedModel


def stereo_model(layout: str = "ms", **overrides) -> Codec:
    """The spectral44k layout shrunk for tests: 16 kHz, hop 80, width 32, codebooks that
    have seen audio."""
    torch.manual_seed(0)
    options = dict(sample_rate=16000, strides=(80,), widths=(32, 32), n_fft=160,
                   dilations=(1,), latent_dim=16, n_q=4, codebook_size=32, stereo=layout)
    model = Codec(model_config("spectral44k", **{**options, **overrides}))
    with torch.no_grad():
        model(0.1 * torch.randn(4, 2, 4000, generator=torch.Generator().manual_seed(1)))
    return model.eval()


def test_mid_side_is_exactly_inverted_on_any_channel_axis():
    for shape in ((3, 2, 50), (1, 2, 7, 5), (2, 2, 2, 7, 5)):
        signal = torch.randn(shape)
        coded = stereo.to_coded(signal, "ms")
        torch.testing.assert_close(coded[:, 0], (signal[:, 0] + signal[:, 1]) / 2)
        torch.testing.assert_close(coded[:, 1], (signal[:, 0] - signal[:, 1]) / 2)
        torch.testing.assert_close(stereo.from_coded(coded, "ms"), signal)
        assert stereo.to_coded(signal, "lr") is signal


@pytest.mark.parametrize("overrides, message", [
    (dict(stereo="xy"), "must be one of"),
    (dict(stereo="ms", channels=1), "two-channel"),
    (dict(stereo="ms", channels=2, arch="seanet", n_fft=640), "two-channel spectral")])
def test_a_layout_that_cannot_be_is_a_config_error(overrides, message):
    preset = "tiny" if overrides.get("arch") == "seanet" else "spectral"
    with pytest.raises(ConfigError, match=message):
        Codec(model_config(preset, **overrides))


def test_existing_model_ids_leave_the_layout_out_and_mid_side_enters_them():
    assert "stereo" not in _id_fields(model_config("spectral"))
    assert "stereo" not in _id_fields(model_config("spectral44k", stereo="lr"))
    assert _id_fields(model_config("spectral44k"))["stereo"] == "ms"
    left_right, mid_side = stereo_model("lr"), stereo_model("ms")
    assert compute_model_id(left_right) != compute_model_id(mid_side)


def test_a_mid_side_model_codes_left_right_audio_through_every_path():
    model = stereo_model()
    audio = 0.1 * torch.randn(1, 2, 1600, generator=torch.Generator().manual_seed(2))
    codes = model.encode(audio)
    decoded = model.decode(codes, 1600)
    assert decoded.shape == audio.shape
    # The encoder sees mid and side: swapping left and right changes only the side's sign.
    swapped = model.encoder.analysis(audio.flip(1))
    torch.testing.assert_close(stereo.to_coded(swapped, "ms")[:, 1],
                               -stereo.to_coded(model.encoder.analysis(audio), "ms")[:, 1])
    # A .qca file decodes to what the network decodes.
    pretrained = PretrainedModel.from_network(model)
    data = compress.encode(pretrained, audio[0], 16000, n_q=4, level_match=False)
    from_file, rate = compress.decode(pretrained, data)
    assert rate == 16000 and from_file.shape == (2, 1600)


def test_a_causal_mid_side_model_streams_as_it_codes_offline():
    model = stereo_model(causal=True, n_fft=160, synthesis_overlap=20)
    audio = 0.1 * torch.randn(1, 2, 8 * 80 - 13, generator=torch.Generator().manual_seed(4))
    codes = model.encode(audio)
    encoder = StreamingEncoder(model)
    streamed = torch.cat([encoder.push(audio[..., i:i + 80]) for i in range(0, 627, 80)]
                         + [encoder.flush()], dim=-1)
    assert torch.equal(streamed, codes)
    decoder = StreamingDecoder(model)
    decoded = torch.cat([decoder.push(codes[..., i:i + 1]) for i in range(codes.shape[-1])]
                        + [decoder.flush()], dim=-1)
    torch.testing.assert_close(decoded, model.decode(codes), rtol=1e-5, atol=1e-6)


def test_onnx_graphs_of_a_mid_side_model_code_as_it_does(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from codec.onnx_export import export_onnx
    model = stereo_model()
    paths = export_onnx(model, tmp_path)
    audio = 0.1 * torch.randn(1, 2, 1600, generator=torch.Generator().manual_seed(5))
    encoder = ort.InferenceSession(str(paths["encoder.onnx"]))
    codes = encoder.run(None, {"audio": audio.numpy()})[0]
    assert (codes == model.encode(audio).numpy()).all()
    decoder = ort.InferenceSession(str(paths["decoder.onnx"]))
    decoded = decoder.run(None, {"codes": codes})[0]
    assert abs(decoded - model.decode(torch.from_numpy(codes)).numpy()).max() < 1e-4
