"""Command-line flags generated from the config dataclasses (settings/configs.py).

Every field is a flag: its name (`--batch-size` for `batch_size`, or the field's own `flag`), type,
help, default and choices come from the field. An unset flag keeps the default. Parsing is strict:
an unknown or misspelled flag stops the program and names the nearest valid flag; arguments meant
for Beam go after `--` or in `--beam-arg=...` (repeatable), and replace the default Beam arguments.
`parse` validates the result, so every entry point refuses bad settings before any work.
"""
import argparse
import dataclasses
import difflib
import os
import sys
import typing
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from settings import configs, fields

PIPELINE = "pipeline"  # the section name of PipelineConfig's own fields (output root, Beam arguments, ...)
BEAM_SEPARATOR = "--"
BEAM_DEST = f"{PIPELINE}.beam_pipeline_args"


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_widths(text: str) -> Tuple[int, ...]:
    try:
        return tuple(int(u) for u in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, e.g. 500,500,500, got {text!r}") from None


def value_parser(field: dataclasses.Field) -> Callable[[str], Any]:
    """What turns a flag's text into the field's type."""
    kind = field.type
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if typing.get_origin(kind) is tuple:
        return parse_widths
    return {bool: parse_bool}.get(kind, kind)


def _flag_fields(sections: Sequence[str]) -> Iterator[Tuple[str, dataclasses.Field]]:
    """(section, field) for every flag of these sections."""
    for section in sections:
        if section == PIPELINE:
            yield from ((PIPELINE, f) for f in dataclasses.fields(configs.PipelineConfig)
                        if f.metadata.get("help") and f.name != "beam_pipeline_args")
        else:
            yield from ((section, f) for f in dataclasses.fields(configs.PipelineConfig.__dataclass_fields__[section].type))


class StrictParser(argparse.ArgumentParser):
    """ArgumentParser that refuses unknown flags, naming the nearest valid one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def parse_args(self, args=None, namespace=None):  # pylint: disable=signature-differs
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            known = [s for action in self._actions for s in action.option_strings]
            hints = []
            for token in unknown:
                name = token.split("=", 1)[0]
                close = difflib.get_close_matches(name.replace("_", "-"), known, n=1, cutoff=0.6)
                hints.append(f"{token!r}" + (f" (did you mean {close[0]}?)" if close and name.startswith("-") else ""))
            beam = (f". Arguments for Beam go after '{BEAM_SEPARATOR}' or in --beam-arg=..."
                    if self.takes_beam_args() else "")
            self.error(f"unknown argument(s): {', '.join(hints)}{beam}")
        return parsed

    def error(self, message: str):
        """Exits with status 2 and the message alone (the usage of 40 flags would bury it)."""
        self.exit(2, f"{self.prog}: error: {message}\n(run with --help for every flag)\n")

    def takes_beam_args(self) -> bool:
        return "--beam-arg" in self._option_string_actions


def add_flags(parser: argparse.ArgumentParser,
              sections: Sequence[str] = (PIPELINE,) + configs.SECTIONS) -> None:
    """Adds one flag per field of `sections` (with the pipeline's own: `--beam-arg` too)."""
    defaults = configs.PipelineConfig()
    groups: Dict[str, Any] = {}
    for section, field in _flag_fields(sections):
        group = groups.setdefault(section, parser.add_argument_group(f"{section} settings"))
        default = getattr(defaults if section == PIPELINE else getattr(defaults, section), field.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else "unset" if default is None else default
        parser_kwargs: Dict[str, Any] = {"dest": f"{section}.{field.name}", "default": None,
                                         "metavar": field.name.upper(), "type": value_parser(field),
                                         "help": f"{field.metadata['help']} (default: {shown})"}
        if field.metadata.get("choices"):  # checked by validate(), which names every problem at once
            parser_kwargs["metavar"] = "{" + ",".join(field.metadata["choices"]) + "}"
        if field.type is bool:  # `--flag` alone means true; `--flag false` also works
            parser_kwargs.update(nargs="?", const=True)
        group.add_argument(fields.flag_name(field), **parser_kwargs)
    if PIPELINE in sections:
        groups[PIPELINE].add_argument("--beam-arg", action="append", default=None, dest=BEAM_DEST, metavar="ARG",
                            help="a Beam pipeline argument for the Beam steps; repeatable (or put them after --)")


def from_args(args: argparse.Namespace, base: Optional[configs.PipelineConfig] = None,
              beam_args: Sequence[str] = ()) -> configs.PipelineConfig:
    """Applies the parsed flags (and Beam arguments) on top of `base` (defaults when None)."""
    config = base or configs.PipelineConfig()
    for dest, value in vars(args).items():
        section, _, name = dest.partition(".")
        if not name or value is None or dest == BEAM_DEST:
            continue
        setattr(config if section == PIPELINE else getattr(config, section), name, value)
    user_beam_args = list(getattr(args, BEAM_DEST, None) or []) + list(beam_args)
    if user_beam_args:
        config.beam_pipeline_args = user_beam_args
    if "://" not in config.output_root:  # keep gs://, s3://, hdfs:// roots as they are
        config.output_root = os.path.abspath(config.output_root)
    return config


def split_beam_args(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(our arguments, Beam's): Beam's are everything after the first `--`."""
    argv = list(argv)
    if BEAM_SEPARATOR in argv:
        at = argv.index(BEAM_SEPARATOR)
        return argv[:at], argv[at + 1:]
    return argv, []


def parse(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None
          ) -> Tuple[configs.PipelineConfig, argparse.Namespace]:
    """Parses `argv` (default: the command line) into a validated config, and the namespace for the
    caller's own flags. Exits with status 2 and the problems named when a setting is invalid."""
    own, beam_args = split_beam_args(sys.argv[1:] if argv is None else argv)
    if beam_args and not (isinstance(parser, StrictParser) and parser.takes_beam_args()):
        parser.error(f"this command runs no Beam job, so it takes nothing after '{BEAM_SEPARATOR}': {beam_args}")
    args = parser.parse_args(own)
    config = from_args(args, beam_args=beam_args)
    try:
        configs.validate(config)
    except configs.SettingsError as error:
        parser.error(str(error))
    return config, args
