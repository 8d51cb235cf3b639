import json

import pytest
import torch

from codec import Codec, model_config
from codec.errors import CodecError
from eval.bench import main
from eval.onnx_speed import onnx_calls

FAST = ["--preset", "tiny", "--seconds", "1", "--repeats", "1", "--batch", "1",
        "--segment", "0.5", "--threads", "1", "--disc"]


@pytest.fixture(autouse=True)
def _needs_onnx():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")


def test_bench_times_the_graphs_beside_torch(tmp_path, capsys):
    folder = tmp_path / "graphs"
    assert main([*FAST, "--json", "--onnx", str(folder)]) == 0
    result = json.loads(capsys.readouterr().out)["ours"]["onnxruntime"]
    assert result["folder"] == str(folder) and (folder / "encoder.onnx").is_file()
    assert result["encode"]["rtf"] > 0 and result["decode"]["rtf"] > 0
    # The same preset and seed build the same model: its graphs are timed as they are.
    assert main([*FAST, "--onnx", str(folder)]) == 0
    assert "onnxruntime, CPU" in capsys.readouterr().out


def test_graphs_of_another_model_are_refused(tmp_path):
    onnx_calls(Codec(model_config("tiny")), tmp_path, threads=1)
    with pytest.raises(CodecError, match="not of the model under test"):
        onnx_calls(Codec(model_config("tiny")), tmp_path, threads=1)


def test_the_calls_code_and_decode(tmp_path):
    model = Codec(model_config("tiny")).eval()
    encode, decode = onnx_calls(model, tmp_path, threads=1)
    audio = 0.1 * torch.randn(1, 1, 3200)
    codes = encode(audio.numpy())
    assert codes.shape == (1, model.config.n_q, 10)
    assert decode(codes).shape == (1, 1, 3200)
