"""`--preset NAME` for `vsslkit pretrain / finetune`, and `vsslkit presets` (the table).

A preset fills only what the user did not type: every preset-controlled flag defaults to None
on the command line, so "not given" is visible, and is then filled from the preset, else from
the kit's default. Backbone settings of a fine-tuning checkpoint (`--init`) still beat the
preset's (the checkpoint fixes the network). Torch is imported only when a preset is used, so
`vsslkit --help` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any

# flag dest -> PretrainConfig / FinetuneRecipe field that a preset fills (besides the backbone settings)
PRETRAIN_FIELDS = ("task", "batch_size", "lr", "optimizer")
FINETUNE_FIELDS = ("batch_size", "lr", "optimizer")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("presets", help="the seeds' full-size recipes for --preset",
                              description="The seeds' full-size recipes: `vsslkit pretrain --preset NAME ...`.")
    p.set_defaults(func=run_presets)


def run_presets(args: argparse.Namespace) -> int:
    print(presets_text())
    return 0


def presets_text() -> str:
    """The table plus each preset's notes (what its seed leaves open)."""
    from vsslkit.experiments.presets import PRESETS, preset_table

    notes = [f"{p.name}: {p.description}\n" + "".join(f"  - {n}\n" for n in p.notes) for p in PRESETS.values()]
    return (preset_table() + "\n\nEpochs and LR milestones are the papers'; milestones become optimiser steps at "
            "run time (steps per epoch of the run's own data, batch and GPUs). Flags given explicitly win.\n\n"
            + "".join(notes).rstrip())


class PresetAction(argparse.Action):
    """`--preset NAME` stores the (checked) name; `--preset list` prints the presets and exits 0 (before
    the required flags are checked, like --help); an unknown name is a one-line error (exit 2)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from vsslkit.experiments.presets import get_preset

        if values == "list":
            print(presets_text())
            parser.exit(0)
        try:
            setattr(namespace, self.dest, get_preset(values).name)  # a name: the command line stays printable
        except ValueError as exc:
            parser.error(f"argument --preset: {exc}")


def add_preset_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", action=PresetAction, default=None, metavar="NAME",
                   help="a seed's full-size recipe fills every setting not given explicitly "
                        "(`--preset list` or `vsslkit presets` shows them)")


def chosen(args: argparse.Namespace) -> Any:
    """The `Preset` named by --preset, or None."""
    if getattr(args, "preset", None) is None:
        return None
    from vsslkit.experiments.presets import get_preset

    return get_preset(args.preset)


def backbone_defaults(preset: Any) -> dict[str, Any]:
    """The preset's backbone/input settings (`commands.common.BACKBONE_SETTINGS`), to lay over the
    kit's defaults in `resolve_settings` (so a checkpoint's settings still win)."""
    from vsslkit.commands.common import BACKBONE_SETTINGS

    if preset is None:
        return {}
    settings = {k: getattr(preset.pretrain, k) for k in BACKBONE_SETTINGS}
    if settings["norm"] != "tgn":
        del settings["tgn_group_frames"]
    return settings


def preset_values(preset: Any, command: str) -> dict[str, Any]:
    """Flag dest -> value that `preset` gives `command` ("pretrain" or "finetune"), backbone aside."""
    if preset is None:
        return {}
    if command == "pretrain":
        c = preset.pretrain
        values = {k: getattr(c, k) for k in PRETRAIN_FIELDS}
        values["contrastive"] = c.moco is not None
        if c.moco is not None:
            values.update(queue_size=c.moco.queue_size, ctr_weight=c.moco.weight)
        if c.curriculum is not None:
            values["curriculum"] = c.curriculum
        epochs = preset.epochs
    else:
        recipe = preset.finetune
        if recipe is None:
            return {}
        values = {k: getattr(recipe, k) for k in FINETUNE_FIELDS}
        epochs = recipe.epochs
    if epochs is not None:
        values["epochs"] = epochs
    return values


def fill(args: argparse.Namespace, values: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """Every dest in `defaults` (and `values`) left None by the command line: the preset's value,
    else the kit default. `epochs` is filled only when neither --epochs nor --steps was given.
    Returns `key=value` for each setting the preset supplied."""
    taken = []
    for key in dict.fromkeys([*defaults, *values]):
        if getattr(args, key, None) is not None:
            continue
        if key == "epochs" and getattr(args, "steps", None) is not None:
            continue
        if key in values:
            setattr(args, key, values[key])
            taken.append(f"{key}={values[key]!r}")
        else:
            setattr(args, key, defaults[key])
    return taken


def milestone_note(milestone_epochs: tuple[int, ...], steps: tuple[int, ...], per_epoch: int, samples: int,
                   batch: int, world: int) -> str:
    """The line that says how the preset's epoch milestones became step milestones."""
    return (f"LR milestones at epochs {', '.join(map(str, milestone_epochs))} = steps {', '.join(map(str, steps))} "
            f"({per_epoch} steps per epoch: {samples} usable videos, batch {batch} x {world} process(es))")
