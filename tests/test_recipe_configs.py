"""Every recipe's config.yaml is a valid LightningCLI config for `asr fit`."""

import sys
from pathlib import Path

import pytest
import yaml

from asr.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(REPO.glob("recipes/*/config.yaml"))


def test_every_training_recipe_has_a_config():
    names = {p.parent.name for p in CONFIGS}
    assert {"commands", "fsdd", "speech_commands", "librispeech", "tiny"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.parent.name)
def test_config_parses(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(sys, "argv", ["asr"])  # LightningCLI warns when argv holds pytest's
    with pytest.raises(SystemExit) as exit_info:
        train_main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    given = yaml.safe_load(config.read_text())
    for key, value in given["model"].items():  # every key was taken, none renamed or lost
        assert printed["model"][key] == value, key
    assert printed["data"]["max_frames"] == given["data"]["max_frames"]
