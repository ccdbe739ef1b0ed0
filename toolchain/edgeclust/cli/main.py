"""The `edgeclust` command: a click group whose commands live one per module in this package.

Every EdgeclustError becomes one line on stderr and its exit code (1 failed check or domain error,
2 bad usage or unreadable input); no traceback unless EDGECLUST_DEBUG=1.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys

import click

from edgeclust import __version__
from edgeclust.errors import EdgeclustError

# the commands, in the order help lists them; each is the `command` of the module edgeclust.cli.<name>
COMMANDS = ("cluster", "convert", "inspect", "verify", "build", "flash", "boards", "demo")


class LazyGroup(click.Group):
    """Imports a command's module only when that command (or the help listing) needs it."""

    def list_commands(self, ctx):
        return [name for name in COMMANDS if self._module_exists(name)]

    def get_command(self, ctx, name):
        if name not in COMMANDS or not self._module_exists(name):
            return None
        return importlib.import_module(f"edgeclust.cli.{name}").command

    @staticmethod
    def _module_exists(name):
        return importlib.util.find_spec(f"edgeclust.cli.{name}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeclust")
def cli():
    """Cluster a Keras 3 model's weights and take it to a microcontroller.

    \b
    Typical flow:  edgeclust cluster -> convert -> verify -> build -> flash
    All in one:    edgeclust build MODEL.keras --board qemu_mps2_an386 --data DATA.npz
    Try it:        edgeclust demo
    """


def debug_enabled() -> bool:
    return os.environ.get("EDGECLUST_DEBUG", "") not in ("", "0")


def quiet_tensorflow() -> None:
    """TensorFlow's start-up banners and retracing warnings are noise on a CLI's stderr: its C++ logging is
    turned down before TensorFlow is imported, and its Python logger to errors."""
    import logging

    for name, value in (("TF_CPP_MIN_LOG_LEVEL", "3"), ("GLOG_minloglevel", "3"), ("ABSL_MIN_LOG_LEVEL", "3")):
        os.environ.setdefault(name, value)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr_silenced():
    """Send what C++ libraries write to file descriptor 2 (absl's "All log messages before
    absl::InitializeLog()", oneDNN's and XLA's lines) to /dev/null, while Python's sys.stderr, where edgeclust
    prints, keeps writing to the terminal. Only in a real process whose sys.stderr is descriptor 2."""
    try:
        real = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    if not real:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    sys.stderr = open(
        saved, "w", buffering=1, encoding=python_stderr.encoding, errors="backslashreplace", closefd=False
    )
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr = python_stderr


def main(argv=None):
    """Console entry point: run the group, turn expected failures into one line and an exit code."""
    if debug_enabled():
        return _run(argv)
    from edgeclust.cli.progress import warnings_as_notes

    with native_stderr_silenced(), warnings_as_notes():
        quiet_tensorflow()
        _run(argv)


def _run(argv):
    """Run the group; every expected failure becomes one line on stderr and the process's exit code."""
    try:
        # outside standalone mode click returns the code given to ctx.exit(...) instead of exiting with it
        status = cli.main(args=argv, prog_name="edgeclust", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("edgeclust: interrupted; nothing was written", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "edgeclust"
        click.echo(f"edgeclust: error: {exc.format_message().rstrip('.')}; see `{command} --help`", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"edgeclust: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except EdgeclustError as exc:
        if debug_enabled():
            raise
        click.echo(f"edgeclust: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        click.echo("edgeclust: interrupted; nothing was written", err=True)
        sys.exit(130)
    except Exception as exc:  # an unexpected failure is still one line, never a traceback
        if debug_enabled():
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        click.echo(
            f"edgeclust: internal error: {type(exc).__name__}: {first} "
            "(run again with EDGECLUST_DEBUG=1 for the traceback and report it)",
            err=True,
        )
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
