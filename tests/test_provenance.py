"""What runs and exports record about where they came from."""
import json
import subprocess
import sys

from codec import __version__
from codec.provenance import SOURCE_ROOT, collect, command_line, git_state


def test_collect_records_versions_command_and_git_commit():
    facts = collect(["/somewhere/bin/codec", "train", "my run.yaml", "train.steps=5"])
    assert facts["command"] == "codec train 'my run.yaml' train.steps=5"
    versions = facts["versions"]
    assert versions["codec"] == __version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert versions["torch"] and versions["torchaudio"]
    json.dumps(facts)  # JSON-ready
    in_checkout = subprocess.run(["git", "-C", str(SOURCE_ROOT), "rev-parse", "HEAD"],
                                 capture_output=True, text=True)
    if in_checkout.returncode == 0:
        assert facts["git"]["commit"] == in_checkout.stdout.strip()
        assert isinstance(facts["git"]["dirty"], bool)


def test_no_git_entry_outside_a_checkout(tmp_path):
    assert git_state(tmp_path) is None


def test_python_dash_m_is_written_as_typed():
    assert command_line(["/x/codec/__main__.py", "train", "a.yaml"]) == \
        "python -m codec train a.yaml"
