import shutil
import subprocess

import pytest

from codec import __version__
from eval import evaluate

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report_dir(eval_set, tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert evaluate.main(["--model", str(tiny_run), "--data", str(eval_set), "-o", str(out),
                          "--kbps", "5", "--clips", "2", "--clip-seconds", "1"]) == 0
    return out


def test_report_embeds_everything(report_dir):
    html = (report_dir / "index.html").read_text()
    # Nothing is fetched from elsewhere: images and audio are data URIs.
    assert "http://" not in html and "https://" not in html
    assert 'src="data:image/png;base64,' in html
    assert 'src="data:audio/flac;base64,' in html
    # Two clips, each with the original and the one codec bitrate.
    assert html.count("<audio") == 4


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_report_renders_in_a_headless_browser(report_dir, tmp_path):
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         (report_dir / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert '<table class="summary">' in dom and '<table class="rd">' in dom
    assert "codec 4.8 kbps (1 codebook)" in dom
    assert dom.count('<img src="data:image/png;base64,') >= 4
    assert dom.count("<audio controls") == 4
    # Training facts: steps, wall time, the command and the toolkit's version.
    assert '<h2 id="training">' in dom and '<table class="training">' in dom
    assert "codec train tiny.yaml" in dom and "1.5 min" in dom and f"codec {__version__}" in dom
    # A spectrogram figure (original, decoded, difference) under each listening clip.
    assert dom.count('<div class="spectrogram"><img src="data:image/png;base64,') == 2
    # One row per file, a column per metric and system; speech and music apart.
    assert '<table class="wide">' in dom and "SNR codec 4.8 kbps" not in dom
    assert "snr codec 4.8 kbps (1 codebook)" in dom
    wide = dom.split('<table class="wide">')[1].split("</table>")[0]
    assert wide.count("<tr><td>speech/") == 2 and wide.count("<tr><td>music/") == 1
    assert '<table class="groups">' in dom and "n=2" in dom and "n=1" in dom
    assert '<h2 id="flags">' in dom
