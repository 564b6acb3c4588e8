"""The one config mechanism: dataclasses whose fields carry their help, unit and bounds.

Every stage's config is a dataclass (``TrainConfig``, ``PrepConfig``, ``DecodeConfig``, ...)
whose fields are declared with :func:`option`. From those declarations alone:

* :func:`validate` checks type and range of every field before anything is frozen into a
  stage dir, with a message naming the key, the value and what is allowed;
* :func:`render` writes the resolved config as YAML, each key with its help, unit and bounds
  (``stnas <stage> --print-config``);
* :func:`read_yaml_mapping` and :func:`coerce` read YAML files and ``key=value`` overrides
  with the same rules everywhere.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Union, cast

import yaml

from pipeline.errors import StnasError
from pipeline.textfile import read_text

Check = Optional[Callable[[Any], bool]]
_TYPES = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "dict": (dict,),
    "list": (list, tuple),
}
_NAMES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "dict": "a mapping",
    "list": "a list",
}


def option(
    default: Any = dataclasses.MISSING,
    *,
    kind: str,
    help: str,
    unit: str = "",
    check: Check = None,
    allowed: str = "",
    factory: Optional[Callable[[], Any]] = None,
) -> Any:
    """A config field: its default, and what :func:`validate` and :func:`render` need.

    Args:
        default: the default value (``factory`` for a list or mapping).
        kind: ``int``, ``float`` (an int is accepted), ``bool``, ``str``, ``dict`` or
            ``list``; a trailing ``?`` allows None (YAML ``null``).
        help: one line on what the key does.
        unit: the unit of a number (``s``, ``frames``, ``steps``).
        check: a range check of a non-None value.
        allowed: what ``check`` allows, in words (``>= 1``, ``in (0, 1]``).
        factory: makes the default (for mutable values).
    """
    meta = {"kind": kind, "help": help, "unit": unit, "check": check, "allowed": allowed}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def positive(x: float) -> bool:
    return x > 0


def non_negative(x: float) -> bool:
    return x >= 0


def one_of(*values: Any) -> Callable[[Any], bool]:
    """A check that allows exactly ``values``."""
    return lambda v: v in values


def check_value(
    key: str, value: Any, kind: str, check: Check, allowed: str, where: str = ""
) -> None:
    """Raise :class:`StnasError` when ``value`` is not of ``kind`` or fails ``check``."""
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None and optional:
        return
    if not isinstance(value, _TYPES[kind]) or (
        kind in ("int", "float") and isinstance(value, bool)
    ):
        raise StnasError(
            f"{where}config key '{key}': {value!r} is not {_NAMES[kind]}"
            + (" (or null)" if optional else "")
            + (f"; allowed: {allowed}" if allowed else "")
        )
    if check is not None and not check(value):
        raise StnasError(
            f"{where}config key '{key}': {value!r} is out of range; allowed: {allowed}"
        )


def validate(cfg: Any, source: str = "") -> None:
    """Check every :func:`option` field of dataclass ``cfg`` (nested configs too).

    Raises:
        StnasError: naming the source file, the key, the value and what is allowed.
    """
    where = f"{source}: " if source else ""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if "kind" in f.metadata:
            m = f.metadata
            check_value(f.name, value, m["kind"], m["check"], m["allowed"], where)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value, source)


def describe(cls: Any) -> Dict[str, Dict[str, str]]:
    """Field name → ``{"help", "unit", "allowed", "kind"}`` of a config dataclass."""
    return {
        f.name: {k: f.metadata.get(k) or "" for k in ("help", "unit", "allowed", "kind")}
        for f in dataclasses.fields(cls)
    }


def render(cfg: Any, title: str = "") -> str:
    """The resolved config as YAML, a comment line above each key with its help, unit and
    bounds (what ``--print-config`` prints)."""
    lines: List[str] = [f"# {title}"] if title else []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        m = f.metadata
        note = m.get("help", "")
        extra = ", ".join(
            x
            for x in (
                m.get("unit") and f"unit: {m['unit']}",
                m.get("allowed") and f"allowed: {m['allowed']}",
            )
            if x
        )
        if note or extra:
            lines.append(f"# {note}" + (f" ({extra})" if extra else ""))
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(cast(Any, value))  # typed instance | class; an instance here
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        lines.append(f"{f.name}: {text.removesuffix('...').strip()}")
    return "\n".join(lines) + "\n"


# What PyYAML's safe loader raises besides YAMLError: its constructors let plain ValueError
# or AttributeError through for malformed tagged scalars (``!!timestamp x``, ``!!int 0x``,
# ``a: 2001-13-45``), and deep nesting exhausts the stack.
YAML_PARSE_ERRORS = (yaml.YAMLError, ValueError, TypeError, AttributeError, RecursionError)


def parse_yaml(text: str, where: str, what: str = "YAML") -> Any:
    """``yaml.safe_load(text)``; what cannot be parsed is a :class:`StnasError` naming
    ``where`` (a file, a ``--set`` option) and ``what`` it was to be."""
    try:
        return yaml.safe_load(text)
    except YAML_PARSE_ERRORS as e:
        raise StnasError(f"{where}: cannot read {what}: {e}") from None


def coerce(name: str, text: str, current: Any) -> Any:
    """Parse a command-line override with YAML rules (numbers, bools, null, lists); a number
    where ``current`` is a float (YAML reads ``2e-3`` as a string)."""
    value = parse_yaml(text, name)
    if isinstance(current, float) and not isinstance(current, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise StnasError(f"{name} must be a number, got '{text}'") from None
    return value


def read_yaml_mapping(path: Union[str, Path], what: str = "config") -> Dict[str, Any]:
    """A YAML file that holds ``key: value`` pairs (empty: ``{}``).

    Raises:
        StnasError: unreadable, not UTF-8 (:class:`~pipeline.errors.DataError`, naming the
            line and byte), not YAML, or not a mapping, naming the file.
    """
    try:
        text = read_text(path)
    except OSError as e:
        raise StnasError(f"{path}: cannot read {what}: {e.strerror or e}") from None
    data = parse_yaml(text, str(path), what) or {}
    if not isinstance(data, Mapping):
        raise StnasError(f"{path}: a {what} must be a mapping of key: value")
    return dict(data)
