"""What a command shows in the terminal: progress bars while it works, tables when it is done.

Progress goes to stderr, results to stdout. Bars appear only when stdout is a terminal and the
command was not given ``--quiet``, so piped or logged output stays clean.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

err = Console(stderr=True)
out = Console()


class _Rate(ProgressColumn):
    """Items per second of a task (samples/s, epochs/s), once rich has measured it."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f}/s" if speed else "", style="progress.data.speed")


class Bars:
    """Named progress bars: ``update(name, done, total)`` creates the bar on first use.

    ``update`` itself is the ``(side, done, total)`` callback of stages that report several sides
    (parity: the reference and each backend); ``callback(name)`` gives a ``(done, total)`` one."""

    def __init__(self, quiet: bool = False, prefix: str = ""):
        self.prefix = prefix
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), _Rate(), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=err, transient=True, disable=quiet or not sys.stdout.isatty())
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> "Bars":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, name: str, done: int | None, total: int | None) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(f"{self.prefix}{name}", total=total)
        self.progress.update(self.tasks[name], completed=done or 0, total=total)

    def callback(self, name: str) -> Callable[[int, int], None]:
        self.update(name, 0, None)
        return lambda done, total: self.update(name, done, total)


def summary(rows: list[tuple[str, str]], title: str) -> None:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)


def columns_table(table: tuple[list[str], list[list[str]]], title: str, columns: dict[str, str]) -> None:
    """Print the ``columns`` (report header -> printed header) of a report table; numbers right-aligned."""
    headers, rows = table
    keep = [headers.index(c) for c in columns]
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False,
              padding=(0, 0))  # the box's separator alone between columns
    for i in keep:
        label, prose = columns[headers[i]], headers[i] in ("kind", "quality")
        status = headers[i].endswith("status")  # a status wraps between its words ("not / reproduced")
        width = max([len(w) for w in label.split("\n")] + [min(len(r[i]), 24) for r in rows if prose]
                    + [max(map(len, r[i].split())) for r in rows if status])
        t.add_column(label, justify="left" if prose or status or i == keep[0] else "right",
                     no_wrap=not (prose or status), min_width=width, max_width=width if status else None)
    for row in rows:
        t.add_row(*[row[i] for i in keep])
    out.print(t)


def fail(message: str, code: int) -> None:
    """One unwrapped line on stderr, then exit with ``code``."""
    sys.stderr.write(" ".join(message.split()) + "\n")
    sys.exit(code)


def _terminate(_signum, _frame) -> None:
    """SIGTERM unwinds like Ctrl-C: temporary files are removed and Lava's child is stopped."""
    raise KeyboardInterrupt


def save_traceback(err: BaseException) -> Path:
    """Write the traceback of an internal error to a new file in the temporary folder; returns its path."""
    import tempfile
    import traceback

    from spikeport.files import fileio

    path = Path(tempfile.gettempdir()) / f"spikeport-bug-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    fileio.write_text(path, f"spikeport {' '.join(sys.argv[1:])}\n\n{text}")
    return path


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning on the command line is one line, like an error: what happened, not where in the code."""
    first = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    print(f"spikeport: warning: {first}", file=file or sys.stderr)


def exit_on_errors(run: Callable[[], None], gate_failure: type, bad_input: type,
                   runtime_failure: type | None = None) -> None:
    """``run()`` with spikeport's exit codes: ``gate_failure`` 1, ``bad_input`` 2 (one line each),
    ``runtime_failure`` 3 (one line naming its saved log: a simulator failed, nothing was measured),
    Ctrl-C / SIGTERM 130, anything else 3: a bug, one line naming the saved traceback
    (``SPIKEPORT_DEBUG=1`` raises it instead)."""
    import signal
    import warnings

    signal.signal(signal.SIGTERM, _terminate)
    warnings.showwarning = _one_line_warning
    try:
        run()
    except gate_failure as err:
        fail(f"spikeport: {err}", 1)
    except bad_input as err:
        fail(f"spikeport: error: {err}", 2)
    except runtime_failure or () as err:
        fail(f"spikeport: error: {err}", 3)
    except KeyboardInterrupt:
        fail("spikeport: interrupted", 130)
    except Exception as err:  # a bug: one line for the user, the traceback in a file
        if os.environ.get("SPIKEPORT_DEBUG"):
            raise
        path = save_traceback(err)
        fail(f"spikeport: internal error (a bug in spikeport, please report it): {type(err).__name__}: "
             f"{str(err)[:200]}; traceback saved to {path}", 3)
