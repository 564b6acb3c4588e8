"""What every stage command shares: turning library errors into a clear message and exit code."""

from __future__ import annotations

import contextlib
import errno
from typing import Any, Dict, Iterator, Optional

import click

from pipeline.config import render


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Report :class:`pipeline.errors.StnasError`, and files that cannot be written or read
    for want of space or permission, as ``Error: ...`` with exit status 1.

    Anything else is a bug and keeps its traceback. Ctrl-C exits with status 130.
    """
    from pipeline.errors import WRITE_ERRNOS, StnasError, write_error

    try:
        yield
    except StnasError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:  # outside the atomic helpers (feature archives, logs, inputs)
        if e.errno not in WRITE_ERRNOS:
            raise
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise click.ClickException(str(write_error(e.filename or "?", e))) from None
        raise click.ClickException(f"{e.filename or '?'}: {e.strerror}") from None
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        raise SystemExit(130) from None


def print_config_option(fn):
    """The ``--print-config`` flag of a stage command."""
    return click.option(
        "--print-config",
        is_flag=True,
        help="Print the resolved config (every key with its default, help and "
        "bounds) and exit without running.",
    )(fn)


def echo_config(cfg: Any, title: str) -> None:
    """Print ``cfg`` as YAML with a comment per key (``--print-config``)."""
    click.echo(render(cfg, title), nl=False)


def options_from_yaml(
    ctx: click.Context, param: click.Parameter, path: Optional[str]
) -> Optional[str]:
    """Eager ``--config`` callback: a YAML file's keys become the command's option defaults.

    Keys are option names with ``_`` for ``-`` (``hours``, ``noise_snr``, ``corpus_opt``);
    options given on the command line still win. A ``corpus_opt`` mapping becomes
    ``KEY=VALUE`` items; a list for a single-valued option, comma-separated text. An unknown
    key or a file that is not a mapping is a usage error naming the file.
    """
    if not path:
        return path
    from pipeline.config import parse_yaml
    from pipeline.errors import StnasError
    from pipeline.textfile import read_text

    try:
        data = parse_yaml(read_text(path), path) or {}
    except OSError as e:
        raise click.BadParameter(f"{path}: cannot read YAML: {e}", ctx=ctx, param=param) from None
    except StnasError as e:  # not UTF-8 (naming the line and byte) or not YAML
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None
    if not isinstance(data, dict):
        raise click.BadParameter(
            f"{path}: expected a mapping of option names to values", ctx=ctx, param=param
        )
    names = {p.name for p in ctx.command.params if p.name and p.name != param.name}
    unknown = sorted(set(data) - names)
    if unknown:
        raise click.BadParameter(
            f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}",
            ctx=ctx,
            param=param,
        )
    defaults: Dict[str, Any] = dict(data)
    multiple = {p.name for p in ctx.command.params if getattr(p, "multiple", False)}
    for key, value in data.items():
        if isinstance(value, dict):
            defaults[key] = [f"{k}={v}" for k, v in value.items()]
        elif isinstance(value, list) and key not in multiple:  # augment: [noise, reverb]
            defaults[key] = ",".join(str(v) for v in value)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return path
