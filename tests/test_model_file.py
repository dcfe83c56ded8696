import json
import os
import pickle
import re

import pytest
import torch

from asr import model_file
from asr.model import AcousticModel, ModelConfig
from asr.model_file import (
    ModelFileError,
    load_model_file,
    model_path,
    read_header,
    save_model_file,
)
from asr.text import Tokenizer


def small_model() -> AcousticModel:
    torch.manual_seed(0)
    return AcousticModel(ModelConfig(conv_channels=16, hidden_size=16, num_layers=1)).eval()


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = small_model()
    path = tmp_path / "m.safetensors"
    save_model_file(path, model, Tokenizer(), "utterance", {"epochs": 3})
    loaded, tokenizer, header = load_model_file(path)
    assert header["model"] == model.config.to_dict() and header["info"] == {"epochs": 3}
    assert header["features"] == {"normalization": "utterance", "dynamic_range_db": None}
    assert tokenizer.vocabulary == Tokenizer().vocabulary
    x, n = torch.randn(1, 40, 80), torch.tensor([40])
    torch.testing.assert_close(loaded(x, n)[0], model(x, n)[0])
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp files left


def test_truncated_file_gives_clear_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model_file(path, small_model(), Tokenizer(), "utterance")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=str(path)):
        load_model_file(path)


def test_pickle_payload_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model_file(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ("{not json", "corrupt asr settings"),
        ("[1, 2]", r"corrupt asr settings \(not a JSON object\)"),
        (
            '{"format_version": FORMAT, "model": {"hidden_size": 16, "attention_heads": 4}}',
            "settings this asr cannot read .*attention_heads",
        ),
        ('{"format_version": FORMAT, "model": {}}', "settings this asr cannot read .*tokenizer"),
    ],
)
def test_unreadable_settings_name_the_file(tmp_path, settings, reason):
    """Corrupt JSON or a setting this version does not know was a JSONDecodeError,
    KeyError or TypeError traceback."""
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    settings = settings.replace("FORMAT", json.dumps(model_file.FORMAT_VERSION))
    save_file(small_model().state_dict(), path, metadata={model_file.METADATA_KEY: settings})
    with pytest.raises(ModelFileError, match=f"^{re.escape(str(path))}: {reason}"):
        load_model_file(path)


def test_a_safetensors_file_without_asr_settings_is_named(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file(small_model().state_dict(), path)  # weights only, as any safetensors writer
    with pytest.raises(ModelFileError, match=f"^{re.escape(str(path))}: .*without asr settings"):
        load_model_file(path)


@pytest.mark.parametrize("version", ["newer", "none"])
def test_an_unsupported_format_version_is_named(tmp_path, version):
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_model_file(path, small_model(), Tokenizer(), "utterance")
    header = read_header(path)
    if version == "newer":
        header["format_version"] = model_file.FORMAT_VERSION + 1
    else:
        del header["format_version"]
    metadata = {model_file.METADATA_KEY: json.dumps(header)}
    save_file(small_model().state_dict(), path, metadata=metadata)
    shown = header.get("format_version")
    with pytest.raises(
        ModelFileError, match=f"^{re.escape(str(path))}: unsupported format version {shown}$"
    ):
        load_model_file(path)


@pytest.mark.parametrize("weights", ["other sizes", "a tensor missing"])
def test_weights_that_do_not_match_the_settings_are_named(tmp_path, weights):
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_model_file(path, small_model(), Tokenizer(), "utterance")
    metadata = {model_file.METADATA_KEY: json.dumps(read_header(path))}
    if weights == "other sizes":
        config = ModelConfig(conv_channels=16, hidden_size=24, num_layers=1)
        state = AcousticModel(config).state_dict()
    else:
        state = small_model().state_dict()
        state.pop(next(iter(state)))
    save_file(state, path, metadata=metadata)
    with pytest.raises(ModelFileError, match=f"^{re.escape(str(path))}: weights do not match"):
        load_model_file(path)


def test_header_readable_without_weights(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model_file(path, small_model(), Tokenizer(), "none")
    header = read_header(path)
    assert json.loads(json.dumps(header))["features"]["normalization"] == "none"


def test_half_precision_file_is_smaller_and_close(tmp_path):
    model = small_model()
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_model_file(full, model, Tokenizer(), "utterance")
    save_model_file(half, model, Tokenizer(), "utterance", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _, _ = load_model_file(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x, n = torch.randn(1, 40, 80), torch.tensor([40])
    torch.testing.assert_close(loaded(x, n)[0], model(x, n)[0], atol=1e-2, rtol=0)


def test_model_file_gets_the_usual_permissions_not_mkstemps_0600(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model_file(path, small_model(), Tokenizer(), "utterance")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left


def test_features_follow_the_file_old_files_without_newer_options_included(tmp_path):
    import asr

    new, old = tmp_path / "new.safetensors", tmp_path / "old.safetensors"
    save_model_file(new, small_model(), Tokenizer(), "speech", dynamic_range_db=80.0, std_floor=1.0)
    save_model_file(old, small_model(), Tokenizer(), "utterance")
    features = asr.load_model(new).features
    assert (features.normalization, features.dynamic_range_db, features.std_floor) == (
        "speech",
        80.0,
        1.0,
    )
    header = read_header(old)
    del header["features"]["dynamic_range_db"]  # as written before the options existed
    model, tokenizer, _ = load_model_file(old)
    features = asr.transcribe.Recognizer(model, tokenizer, header).features
    assert features.dynamic_range_db is None and features.std_floor is None


def test_bundled_names_the_packaged_model(tmp_path, monkeypatch):
    assert model_path(tmp_path / "m.safetensors") == tmp_path / "m.safetensors"
    monkeypatch.setattr(model_file, "BUNDLED_MODEL", tmp_path / "packaged.safetensors")
    with pytest.raises(FileNotFoundError, match="no bundled model"):
        model_path("bundled")
    (tmp_path / "packaged.safetensors").touch()
    assert model_path("bundled") == model_path(None) == tmp_path / "packaged.safetensors"


def test_set_decoding_stores_the_decoders_default_lm_weight(tmp_path):
    from asr.beam_search import DEFAULT_BEAM_SIZE, DEFAULT_LM_WEIGHT

    path = tmp_path / "m.safetensors"
    save_model_file(path, small_model(), Tokenizer(), "utterance")
    model_file.set_decoding(path, path, ["go", "left"])
    decoding = read_header(path)["decoding"]
    assert (decoding["beam_size"], decoding["lm_weight"]) == (DEFAULT_BEAM_SIZE, DEFAULT_LM_WEIGHT)
