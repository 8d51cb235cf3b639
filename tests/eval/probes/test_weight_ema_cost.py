import subprocess
import sys
from pathlib import Path

from eval.probes import weight_ema_cost

ROOT = Path(__file__).parents[3]


def test_the_default_config_is_the_quickstart_recipe():
    assert weight_ema_cost.DEFAULT_CONFIG == (
        ROOT / "recipes" / "quickstart" / "conf" / "quickstart.yaml")
    assert weight_ema_cost.DEFAULT_CONFIG.is_file()


def test_runs_as_a_module_of_the_probes_package():
    result = subprocess.run([sys.executable, "-m", "eval.probes.weight_ema_cost", "--help"],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.startswith("usage: python -m eval.probes.weight_ema_cost")
