"""How a setting is declared (`setting`), checked (`field_problems`), named on the command line and read back
from JSON (`from_dict`).

A setting is a dataclass field whose metadata says what the flags, validation and a run's identity need:
its help text, optionally its flag name, its valid choices or a check, and whether a run's results can
depend on its value (`changes_results`).
"""
import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar

T = TypeVar("T")

# Checks: (predicate, what a valid value is).
Check = Tuple[Callable[[Any], bool], str]
POSITIVE: Check = (lambda v: v > 0, "> 0")
NON_NEGATIVE: Check = (lambda v: v >= 0, ">= 0")
UNIT_INTERVAL: Check = (lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
OPEN_UNIT_INTERVAL: Check = (lambda v: 0.0 < v < 1.0, "in (0, 1)")
RATE: Check = (lambda v: 0.0 < v <= 1.0, "in (0, 1]")
POSITIVE_WIDTHS: Check = (lambda v: len(v) > 0 and all(u > 0 for u in v), "one or more positive widths")


def setting(default: Any, help: str, flag: Optional[str] = None, choices: Tuple[str, ...] = (),  # pylint: disable=redefined-builtin
            check: Optional[Check] = None, factory: Optional[Callable[[], Any]] = None,
            changes_results: Optional[bool] = None) -> Any:
    """A config field with what validation, the flags and a run's identity need to know about it.

    `changes_results`: whether a trained model, its metrics or a study's record can depend on the value.
    Every setting of a section that a run's identity reads must say (tests/test_settings.py); one that
    only changes speed or memory says False."""
    metadata = {"help": help, "flag": flag, "choices": choices, "check": check, "changes_results": changes_results}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def result_values(section: Any) -> Dict[str, Any]:
    """The settings of a config section that can change a run's results, by name."""
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section) if f.metadata.get("changes_results")}


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def field_problems(section: Any) -> List[str]:
    """What is wrong with a section's values, each naming its flag and what is valid."""
    problems = []
    for field in dataclasses.fields(section):
        value, choices, check = getattr(section, field.name), field.metadata.get("choices"), field.metadata.get("check")
        if choices and value not in choices:
            problems.append(f"{flag_name(field)}: unknown {flag_name(field)[2:]} {value!r}; "
                            f"valid choices: {', '.join(choices)}")
        elif check and value is not None and not check[0](value):
            problems.append(f"{flag_name(field)}: {field.name} must be {check[1]}, got {value!r}")
    return problems


def from_dict(cls: Type[T], values: Dict[str, Any]) -> T:
    """Rebuilds a config dataclass from `dataclasses.asdict` output (JSON lists become tuples)."""
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue
        value = values[field.name]
        if dataclasses.is_dataclass(field.type):
            value = from_dict(field.type, value)
        elif isinstance(value, list) and field.name != "beam_pipeline_args":
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)


def json_ready(values: Dict[str, Any]) -> Dict[str, Any]:
    """Values as they read back from JSON (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
