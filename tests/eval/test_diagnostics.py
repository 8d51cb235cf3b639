import torch

from codec import Codec, model_config
from codec.checkpoint import save_checkpoint
from codec.config import Config
from codec.network.model import compute_model_id
from codec.train.latents import FIGURES
from eval import diagnostics
from eval.results import read_json


def test_command_over_a_runs_checkpoints(eval_set, tmp_path, capsys):
    config = Config(model=model_config("tiny", strides=(2, 4, 5), widths=(8, 16, 32, 64)))
    run = tmp_path / "run"
    for step in (0, 20):
        torch.manual_seed(step)
        model = Codec(config.model)
        save_checkpoint(run / "checkpoints" / f"step-{step:06d}", step=step, config=config,
                        model_state=model.state_dict(), model_id=compute_model_id(model))
    out = tmp_path / "diag"
    assert diagnostics.main([str(run), "--data", str(eval_set), "-o", str(out),
                             "--seconds", "0.5"]) == 0
    saved = read_json(out / "diagnostics.json")
    assert [h["step"] for h in saved["history"]] == [0, 20]
    assert saved["crops"] == 3
    for name in FIGURES:
        assert (out / (name.replace("/", "_") + ".png")).is_file()
    assert (out / "index.html").read_text().count("data:image/png;base64,") == 7
    assert "step" in capsys.readouterr().out


def test_command_without_checkpoints_is_a_one_line_error(tmp_path, capsys):
    assert diagnostics.main([str(tmp_path)]) == 2
    assert "no checkpoints" in capsys.readouterr().err
