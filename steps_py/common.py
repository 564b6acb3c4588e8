"""What every stage command shares: turning library errors into a clear message and exit code."""

from __future__ import annotations

import contextlib
from typing import Iterator

import click


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Report :class:`pipeline.errors.StnasError` as ``Error: ...`` with exit status 1.

    Anything else is a bug and keeps its traceback. Ctrl-C exits with status 130.
    """
    from pipeline.errors import StnasError

    try:
        yield
    except StnasError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        raise SystemExit(130) from None
