"""`edgeclust verify`: exit 0 when every weight tensor holds at most N unique values, 1 when some do not."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

MIN_CLUSTERS = 2


@click.command("verify")
@click.argument("model", metavar="MODEL.tflite", type=click.Path(path_type=Path))
@click.option(
    "--max-unique",
    "-n",
    type=int,
    required=True,
    help="The most unique values a weight tensor may hold (the number of clusters, >= 2).",
)
@click.option("--per-channel", is_flag=True, help="Count unique values per channel instead of per tensor.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def command(model, max_unique, per_channel, as_json):
    """Check that clustering survived conversion: every weight tensor of MODEL.tflite holds at most
    N unique values (per channel with --per-channel).

    Exit status: 0 all pass, 1 some fail (listed), 2 unreadable file or bad usage. Use it to gate CI.
    """
    from edgeclust.errors import ConfigError
    from edgeclust.pipeline.tflite_files import verify_file

    if max_unique < MIN_CLUSTERS:
        raise ConfigError(
            f"--max-unique must be the number of clusters, an integer >= {MIN_CLUSTERS}. "
            f"Received: --max-unique {max_unique}"
        )
    result = verify_file(model, max_unique, per_channel=per_channel).result
    if as_json:
        click.echo(
            json.dumps(
                {
                    "file": str(model),
                    "passed": result.passed,
                    "max_unique": max_unique,
                    "per_channel": per_channel,
                    "checked": result.checked,
                    "failures": [asdict(s) for s in result.failures],
                },
                indent=2,
            )
        )
    else:
        click.echo(f"{'PASS' if result.passed else 'FAIL'}: {model}: {result.summary()}")
        for s in result.failures:
            count = result.count(s)
            click.echo(
                f"  {s.name}: {count:,} unique values{' in one channel' if per_channel else ''} "
                f"({s.consumer}, {s.dtype.lower()}, shape {'x'.join(map(str, s.shape))})"
            )
        hint = _hint(result)
        if hint:
            click.echo(f"hint: {hint}")
    if not result.passed:
        # sys.exit rather than ctx.exit: edgeclust's main() runs click with standalone_mode=False, where
        # click returns ctx.exit's code instead of exiting with it
        sys.exit(1)


def _hint(result) -> str | None:
    if result.passed or not result.failures:
        return None
    n = result.max_unique
    if not result.per_channel and all(s.max_unique_per_channel <= n for s in result.failures):
        return (
            f"every failing tensor holds at most {n} values per channel: per-channel int8 scales or folded "
            "BatchNorm spread them; convert with --per-tensor (and fold BatchNorm before clustering), or "
            "check with --per-channel"
        )
    return f"cluster with --clusters {n} (and --fold-bn), then convert again"
