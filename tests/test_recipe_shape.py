"""Every recipe has the same shape: once you know one, you know all of them.

The same core files, the same `__main__.py`, a `Config` with the shared field
names for the shared concepts, a click group with the shared settings, and
`train`, `evaluate`, `export` and `demo` verbs with the shared options, and a held-out file
name (`config.HELDOUT_FILE`, re-exported by `data`) for the run-directory contract of
`common.runtime`.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import click
import pytest

from common import cli as common_cli

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(
    p.name for p in (ROOT / "recipes").iterdir() if p.is_dir() and (p / "__init__.py").is_file()
)
CORE_FILES = (
    "__init__.py",
    "__main__.py",
    "README.md",
    "config.py",
    "data.py",
    "model.py",
    "train.py",
    "main.py",
    "export.py",
    "demo.py",
)
# Shared concept -> the one field name; the other names seen for it are refused.
SHARED_FIELDS = ("epochs", "batch_size", "time_budget", "cell", "learning_rate")
REFUSED_FIELDS = {
    "num_layers": "layers",
    "encoder_layers": "layers",
    "val_fraction": "validation_fraction",
    "vocab_size": "max_vocab",
    "max_chars": "max_examples",
    "max_sentences": "max_examples",
    "num_examples": "max_examples",
}
SHARED_TRAIN_OPTIONS = (
    "--data",
    "--validation-data",
    "--preset",
    "--epochs",
    "--batch-size",
    "--time-budget",
    "--cell",
    "--output-dir",
    "--seed",
    "--mixed-precision",
    "--strategy",
    "--deterministic",
)


def test_the_recipe_list_is_the_makefile_list():
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^RECIPES := (.*)$", makefile, re.M).group(1).split()
    assert sorted(name.replace("-", "_") for name in listed) == RECIPES
    assert len(RECIPES) >= 6


@pytest.mark.parametrize("name", RECIPES)
def test_core_files_and_entry_point(name):
    directory = ROOT / "recipes" / name
    missing = [f for f in CORE_FILES if not (directory / f).is_file()]
    assert not missing, f"recipes/{name} lacks {missing}"
    assert (directory / "__main__.py").read_text() == (
        f"from recipes.{name}.main import main\n\nmain()\n"
    )


@pytest.mark.parametrize("name", RECIPES)
def test_config_uses_the_shared_names(name):
    config = importlib.import_module(f"recipes.{name}.config")
    assert dataclasses.is_dataclass(config.Config)
    assert config.Config.__dataclass_params__.frozen
    fields = {f.name for f in dataclasses.fields(config.Config)}
    assert set(SHARED_FIELDS) <= fields, f"missing {set(SHARED_FIELDS) - fields}"
    refused = {f: REFUSED_FIELDS[f] for f in fields & set(REFUSED_FIELDS)}
    assert not refused, f"use the shared names: {refused}"
    assert {"tiny", "default"} <= set(config.PRESETS)
    assert all(type(preset) is config.Config for preset in config.PRESETS.values())


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in getattr(param, "opts", ())}


@pytest.mark.parametrize("name", RECIPES)
def test_cli_shape(name):
    main = importlib.import_module(f"recipes.{name}.main")
    config = importlib.import_module(f"recipes.{name}.config")
    data = importlib.import_module(f"recipes.{name}.data")
    assert isinstance(main.cli, click.Group)
    assert main.cli.context_settings == common_cli.CONTEXT_SETTINGS
    assert main.OUTPUT_DIR == f"runs/{name}"
    assert callable(main.main)
    assert re.fullmatch(r"heldout(\.[a-z]+)?", config.HELDOUT_FILE)
    assert data.HELDOUT_FILE is config.HELDOUT_FILE  # one definition, in the light config
    commands = main.cli.commands
    assert {"train", "evaluate", "export", "demo"} <= set(commands)
    assert {"--model-dir", "--host", "--port"} == _options(commands["demo"])
    demo = importlib.import_module(f"recipes.{name}.demo")  # the tab of the demo page
    assert isinstance(demo.TITLE, str) and callable(demo.build)
    assert {"--model-dir", "--output", "--format", "--overwrite"} <= _options(commands["export"])
    export = importlib.import_module(f"recipes.{name}.export")
    assert callable(export.archive)
    assert callable(getattr(export, "litert", None)) or export.LITERT_UNAVAILABLE
    train = _options(commands["train"])
    assert set(SHARED_TRAIN_OPTIONS) <= train, f"missing {set(SHARED_TRAIN_OPTIONS) - train}"
    evaluate = _options(commands["evaluate"])
    assert {"--model-dir", "--data", "--json"} <= evaluate
    data_help = next(p.help for p in commands["evaluate"].params if "--data" in p.opts)
    assert f"MODEL_DIR/{data.HELDOUT_FILE}" in data_help
    for command in commands.values():  # options, not positional arguments, but input files
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        assert all(p.name == "files" and p.nargs == -1 for p in arguments), command.name
