"""Settings: one validate() for every field, flags generated from the fields, strict parsing."""
import dataclasses
import json

import pytest

from settings import configs, fields, flags
from tests.helpers import ENUMERATED


def _parse(argv, sections=(flags.PIPELINE,) + configs.SECTIONS):
    parser = flags.StrictParser(prog="entry")
    flags.add_flags(parser, sections)
    return flags.parse(parser, argv)


def test_the_enumerated_settings_are_the_ones_users_choose_from():
    assert {f.name for _, f in ENUMERATED} == {"structure", "embedding_regularization", "name", "optimizer",
                                               "precision"}


@pytest.mark.parametrize("section,field", ENUMERATED, ids=[f.name for _, f in ENUMERATED])
def test_every_enumerated_setting_is_refused_naming_the_valid_choices(section, field):
    config = configs.PipelineConfig()
    setattr(getattr(config, section), field.name, "no-such-choice")
    with pytest.raises(configs.SettingsError) as error:
        configs.validate(config)
    assert f"{fields.flag_name(field)}: unknown" in str(error.value)
    assert "valid choices: " + ", ".join(field.metadata["choices"]) in str(error.value)


def test_validate_names_every_problem_at_once_with_its_flag():
    config = configs.PipelineConfig()
    config.train.batch_size, config.model.dnn_units, config.loss.negative_sampling_rate = 0, (8, 0), 1.5
    config.train.optimizer, config.model.embedding_regularization = "lazy_adam", "table"
    with pytest.raises(configs.SettingsError) as error:
        configs.validate(config)
    message = str(error.value)
    for expected in ("--batch-size: batch_size must be > 0", "--dnn-units: dnn_units must be one or more positive",
                     "--negative-sampling-rate: negative_sampling_rate must be in (0, 1]",
                     "--optimizer lazy_adam needs --embedding-regularization batch"):
        assert expected in message


def test_a_loss_checks_only_its_own_parameters_and_unset_ones_take_its_defaults():
    config = configs.PipelineConfig()
    config.loss.name, config.loss.alpha = "bce", 0.5
    with pytest.raises(configs.SettingsError, match="loss 'bce' takes no alpha"):
        configs.validate(config)
    config.loss.name, config.loss.alpha, config.loss.tau = "combined_contrastive", None, 0.2
    configs.validate(config)
    assert config.loss.parameters() == {"beta_pos": 1.0, "tau": 0.2}  # alpha: the loss's own default


def _another_value(field, default):
    if field.metadata.get("choices"):
        return next(choice for choice in field.metadata["choices"] if choice != default)
    if isinstance(default, (bool, tuple)):
        return not default if isinstance(default, bool) else (8, 4)
    return {int: 7, float: 0.5, str: "other"}[flags.value_parser(field)]


@pytest.mark.parametrize("section", configs.SECTIONS)
def test_every_field_has_a_flag_that_sets_it(section):
    parser = flags.StrictParser()
    flags.add_flags(parser)
    for field in dataclasses.fields(getattr(configs.PipelineConfig(), section)):
        value = _another_value(field, getattr(getattr(configs.PipelineConfig(), section), field.name))
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        config = flags.from_args(parser.parse_args([fields.flag_name(field), text]))
        assert getattr(getattr(config, section), field.name) == value, field.name


def test_unknown_flags_stop_the_run_naming_the_nearest_valid_flag(capsys):
    with pytest.raises(SystemExit) as stop:
        _parse(["--beta_pos", "0.1"])
    assert stop.value.code == 2
    assert "'--beta_pos' (did you mean --beta-pos?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse(["--beta", "0.1"])  # no abbreviations either
    with pytest.raises(SystemExit):
        _parse(["--rows", "10", "--", "--runner=X"], sections=("data",))  # no Beam job here
    assert "takes nothing after '--'" in capsys.readouterr().err


def test_beam_arguments_go_after_the_separator_or_in_beam_arg():
    default = configs.PipelineConfig().beam_pipeline_args
    assert _parse(["--rows", "5"])[0].beam_pipeline_args == default
    config, _ = _parse(["--rows", "5", "--beam-arg=--direct_num_workers=2", "--", "--runner=DirectRunner"])
    assert config.beam_pipeline_args == ["--direct_num_workers=2", "--runner=DirectRunner"]
    assert config.data.num_rows == 5


def test_trainer_settings_survive_the_custom_config_json_round_trip():
    config = configs.PipelineConfig()
    config.model.dnn_units, config.loss.name, config.loss.alpha = (64, 32), "combined_pair", 0.3
    settings = configs.TrainerSettings.from_pipeline_config(config)
    assert configs.TrainerSettings.from_custom_config(json.loads(json.dumps(settings.to_custom_config()))) == settings


@pytest.mark.parametrize("section", configs.SECTIONS)
def test_every_setting_a_runs_identity_reads_says_whether_it_changes_results(section):
    """A new setting must be declared result-changing or not (`changes_results`): a run's identity, and so
    whether a study reuses a finished run, depends on it."""
    fields = dataclasses.fields(configs.PipelineConfig.__dataclass_fields__[section].type)
    assert [f.name for f in fields if f.metadata.get("changes_results") not in (True, False)] == []
    assert configs.TrainerSettings.__dataclass_fields__.keys() <= set(configs.SECTIONS)
