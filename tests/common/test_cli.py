"""Shared click options: one TrainArgs, validation, model dir checks, helpers."""

import dataclasses
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from common import cli
from common.errors import UserError


@dataclasses.dataclass(frozen=True)
class Config:
    epochs: int = 3
    learning_rate: float = 0.01


PRESETS = {"tiny": Config(epochs=1), "default": Config()}


@click.group()
def group():
    """A toy recipe."""


@group.command()
@cli.train_options(presets=PRESETS, default_output_dir="runs/toy")
@click.option("--learning-rate", type=float, default=None, help="Step size.")
def train(run, learning_rate):
    cfg = cli.apply_overrides(PRESETS[run.preset], epochs=run.epochs, learning_rate=learning_rate)
    click.echo(
        json.dumps({"run": dataclasses.asdict(run), "cfg": dataclasses.asdict(cfg)}, default=str)
    )


@group.command()
@cli.model_dir_option("runs/toy")
@cli.json_option
def evaluate(model_dir, as_json):
    click.echo(json.dumps({"model_dir": str(model_dir), "json": as_json}))


def test_train_receives_one_train_args_and_its_own_options():
    result = CliRunner().invoke(
        group,
        [
            "train",
            "--preset",
            "tiny",
            "--learning-rate",
            "0.5",
            "--cell",
            "gru",
            "--time-budget",
            "2.5",
            "--seed",
            "7",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["run"]["preset"] == "tiny" and out["run"]["cell"] == "gru"
    assert out["run"]["time_budget"] == 2.5 and out["run"]["seed"] == 7
    assert out["run"]["output_dir"] == "runs/toy" and out["run"]["epochs"] is None
    assert out["cfg"] == {"epochs": 1, "learning_rate": 0.5}  # preset value kept, override applied
    assert set(out["run"]) == {f.name for f in dataclasses.fields(cli.TrainArgs)}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "must be positive"),
        (["--batch-size", "-2"], "must be positive"),
        (["--preset", "huge"], "'huge' is not one of"),
        (["--cell", "transformer"], "'transformer' is not one of"),
        (["--strategy", "tpu"], "'tpu' is not one of"),
    ],
)
def test_bad_option_values_exit_non_zero(args, message):
    result = CliRunner().invoke(group, ["train", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_help_shows_defaults():
    result = CliRunner().invoke(group, ["train", "--help"])
    assert result.exit_code == 0
    for text in (
        "--time-budget MINUTES",
        "[default: runs/toy]",
        "[default: 42]",
        "lstm|gru|minimal-gru|simple",
        "auto|default|mirrored|multi-worker",
    ):
        assert text in result.output


def test_model_dir_must_hold_a_model(tmp_path):
    runner = CliRunner()
    result = runner.invoke(group, ["evaluate", "--model-dir", str(tmp_path / "absent")])
    assert result.exit_code == 1 and "no such directory" in result.output
    result = runner.invoke(group, ["evaluate", "--model-dir", str(tmp_path)])
    assert result.exit_code == 1 and "holds no model.keras" in result.output
    (tmp_path / "model.keras").write_bytes(b"")
    result = runner.invoke(group, ["evaluate", "--model-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["json"] is True


def test_user_error_is_one_line_exit_1():
    @click.command()
    def boom():
        raise UserError("data.tsv:3: expected 2 columns, got 1")

    result = CliRunner().invoke(boom, [])
    assert result.exit_code == 1
    assert result.output == "Error: data.tsv:3: expected 2 columns, got 1\n"


def test_apply_overrides_keeps_the_original():
    base = Config()
    new = cli.apply_overrides(base, epochs=9, learning_rate=None)
    assert (base.epochs, new.epochs, new.learning_rate) == (3, 9, 0.01)
    with pytest.raises(TypeError):
        cli.apply_overrides(base, no_such_field=1)


def test_apply_overrides_with_the_shared_train_options():
    @dataclasses.dataclass(frozen=True)
    class Full:
        epochs: int = 3
        batch_size: int = 32
        time_budget: float | None = 4.0
        cell: str = "lstm"
        units: int = 8

    run = cli.TrainArgs(epochs=5, time_budget=1.5)
    cfg = cli.apply_overrides(Full(), run, units=16, epochs=None)
    assert (cfg.epochs, cfg.batch_size, cfg.time_budget, cfg.cell, cfg.units) == (
        5,
        32,
        1.5,
        "lstm",
        16,
    )
    assert cli.apply_overrides(Full(), cli.TrainArgs(), units=None) == Full()


def test_print_table(capsys):
    cli.print_table([{"class": "pos", "f1": 0.5}, {"class": "negative", "f1": 0.25}])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["class", "f1"]
    assert lines[2].split() == ["pos", "0.5000"] and lines[3].split() == ["negative", "0.2500"]
    assert len({len(line) for line in lines}) == 1  # aligned


def test_print_table_aligns_wide_characters(capsys):
    cli.print_table([("2017年5月9日", "ok"), ("9/5/17", "ok")], headers=["source", "x"])
    lines = capsys.readouterr().out.splitlines()
    columns = [cli._width(line[: line.index("ok")]) for line in lines[2:]]
    assert columns[0] == columns[1] == 14  # 12 columns of the wide source + 2 spaces
    assert cli._width("2017年5月9日") == 12 and cli._width("e\u0301") == 1


def test_cell_names_match_the_layers():
    from common import layers

    assert tuple(layers.CELL_NAMES) == cli.CELL_NAMES


def test_train_args_defaults():
    assert cli.TrainArgs().output_dir == Path("runs")


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["interrupt"], 130, "Interrupted; every file written so far is complete."),
        (["fail"], 1, "Error: data.tsv:3: bad\n"),
        (["--no-such-option"], 2, "No such option"),
        (["--help"], 0, ""),
        (["ok"], 0, ""),
    ],
)
def test_main_exit_codes_and_ctrl_c(monkeypatch, capsys, argv, code, message):
    @click.group()
    def toy():
        """A toy recipe."""

    @toy.command()
    def interrupt():
        raise KeyboardInterrupt

    @toy.command()
    def fail():
        raise UserError("data.tsv:3: bad")

    @toy.command()
    def ok():
        click.echo("done")

    monkeypatch.setattr("sys.argv", ["toy", *argv])
    with pytest.raises(SystemExit) as info:
        cli.main(toy, prog_name="python -m recipes.toy")
    assert info.value.code == code
    assert message in capsys.readouterr().err
