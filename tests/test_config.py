"""Training config files: unknown keys, wrong types and out-of-range values are one-line errors that
name the file and the field; valid files load with their values, and config.json round-trips."""
import json

import pytest

from spikeport.errors import SpikeportError
from spikeport.train.config import TrainConfig
from tests.conftest import cli
from tests.test_cli import one_line_error

BASE = '[train]\ndata = "digits"\nhidden = [32, 16]\ntime_steps = 8\nlr = 0.002\n'


def _toml_error(tmp_path, extra: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(BASE + extra)
    with pytest.raises(SpikeportError) as info:
        TrainConfig.from_toml(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path}: "), msg
    return msg


@pytest.mark.parametrize("extra, field, why", [
    ("agument_shift = 1\n", "agument_shift", "unknown field"),  # a misspelt key
    ("epochs = \"20\"\n", "'epochs'", "valid integer"),  # strings are not converted
    ("epochs = 20.0\n", "'epochs'", "valid integer"),  # nor floats to integers
    ("qat = 1\n", "'qat'", "valid boolean"),  # nor integers to booleans
    ("augment_shift = true\n", "'augment_shift'", "valid integer"),  # a boolean is no integer
    ("method = \"lif2\"\n", "'method'", "'klif'"),  # the allowed names are listed
    ("augment_shift = 9\n", "'augment_shift'", "less than or equal to 8"),
    ("tcn_stat_batch = -1\n", "'tcn_stat_batch'", "greater than or equal to 0"),
    ("seq_period = 0\n", "'seq_period'", "greater than or equal to 1"),
    ("seq_onset = -1\n", "'seq_onset'", "greater than or equal to 0"),
    ("beta_mem = 1.5\n", "'beta_mem'", "less than or equal to 1"),
    ("keep_fraction = 0.0\n", "'keep_fraction'", "greater than 0"),
    ("theta = nan\n", "'theta'", "finite"),
    ("seed = -3\n", "'seed'", "greater than or equal to 0"),
    ("channels = []\n", "'channels'", "at least 1 item"),
    ("kernel = 16\n", "'kernel'", "less than or equal to 15"),
    ("method = \"bpsrm\"\nbias = true\n", "'bias'", "must be false for method bpsrm"),
    ("method = \"spikeseq\"\nseq_onset = 8\n", "'seq_onset'", "below time_steps (8)"),
])
def test_bad_field_names_file_and_field(tmp_path, extra, field, why):
    msg = _toml_error(tmp_path, extra)
    assert field in msg and why in msg, msg


def test_nested_value_and_value_are_named(tmp_path):
    msg = _toml_error(tmp_path, "channels = [8, 0]\n")
    assert "field 'channels[1]'" in msg and "got 0" in msg, msg
    msg = _toml_error(tmp_path, "augment_shift = 12\n")
    assert msg.endswith("got 12"), msg


def test_every_unknown_key_is_named_and_tables_outside_train_too(tmp_path):
    assert "unknown field(s) colour, shape" in _toml_error(tmp_path, "shape = 1\ncolour = 2\n")
    path = tmp_path / "two.toml"
    path.write_text("epochs = 3\n" + BASE)
    with pytest.raises(SpikeportError, match=r"two\.toml: unknown key\(s\) epochs \(the options go in \[train\]\)"):
        TrainConfig.from_toml(path)
    path.write_text(BASE + "[profile]\nx = 1\n")
    with pytest.raises(SpikeportError, match=r"two\.toml: unknown key\(s\) profile"):
        TrainConfig.from_toml(path)


def test_valid_file_loads_its_values_and_an_integer_is_a_number(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(BASE + "theta = 1\naugment_shift = 2\nlimit = 300\n")
    cfg = TrainConfig.from_toml(path)
    assert (cfg.hidden, cfg.time_steps, cfg.theta, cfg.augment_shift, cfg.limit) == ([32, 16], 8, 1.0, 2, 300)
    assert isinstance(cfg.theta, float) and cfg.epochs == 20  # an absent field takes its default


def test_config_json_round_trip_and_unknown_key_in_it():
    cfg = TrainConfig(method="klif", hidden=[20], klif_floor="hidden", lr=1)
    doc = json.loads(json.dumps(cfg.to_dict()))
    assert TrainConfig.from_dict(doc, source="run/config.json").to_dict() == cfg.to_dict()
    with pytest.raises(SpikeportError, match=r"^run/config\.json: unknown field\(s\) surprise$"):
        TrainConfig.from_dict({**doc, "surprise": 1}, source="run/config.json")
    with pytest.raises(SpikeportError, match=r"^run/config\.json: field 'hidden\[0\]': input should be a valid integer"):
        TrainConfig.from_dict({**doc, "hidden": ["20"]}, source="run/config.json")


def test_assignment_is_checked_by_validate_with_its_source():
    cfg = TrainConfig()
    cfg.epochs, cfg.hidden = 0, [64]  # assignment does not check; validate() does, naming the source
    with pytest.raises(SpikeportError, match=r"^options: field 'epochs': input should be greater than or equal to 1"):
        cfg.validate("options")
    cfg.epochs = 3
    assert cfg.validate("options") is cfg and cfg.to_dict()["epochs"] == 3
    with pytest.raises(SpikeportError, match=r"^config: field 'lr': input should be greater than 0"):
        TrainConfig(lr=0.0)  # construction checks too


def test_cli_reports_the_bad_config_field_in_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BASE + "augment_shift = 9\n")
    msg = one_line_error(cli("train", "--config", str(path), "--out", str(tmp_path / "run")))
    assert f"{path}: field 'augment_shift'" in msg and "got 9" in msg, msg
    assert not (tmp_path / "run" / "model.safetensors").exists()
