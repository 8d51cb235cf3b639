"""The folder benchmark codes a folder through the command and the batch API, and says
whether they agree."""
import torch

from codec import Codec, model_config
from eval.folder_speed import folder_report, format_folder_report


def test_folder_report_times_and_checks_every_way_of_coding():
    torch.manual_seed(0)
    network = Codec(model_config("tiny", strides=(2, 4, 5), widths=(8, 16, 32, 64)))
    report = folder_report("tiny", network, clips=3, jobs=[1], threads=1, seed=0)
    assert report["settings"]["clips"] == 3
    assert 3 <= report["settings"]["audio_seconds"] <= 15  # clips of 1 to 5 s
    command, api = report["command"], report["api"]
    assert command["jobs_1"]["encode_files_per_s"] > 0
    assert command["same_qca_bytes"] and command["same_wav_bytes"]
    assert api["same_bytes"] and api["decode_max_abs_difference"] < 1e-5
    text = format_folder_report(report)
    assert "codec encode/decode --jobs 1" in text and "encode_batch/decode_batch" in text
