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
    "max_unique",
    multiple=True,
    metavar="N | NAME=N",
    help="The most unique values a weight tensor may hold (the number of clusters, >= 2); NAME=N (a layer "
    "name or glob, repeatable) gives that layer's tensors their own N, 0 leaves them unchecked.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A build's report.json: each tensor checked against its own layer's N from the build.",
)
@click.option("--per-channel", is_flag=True, help="Count unique values per channel instead of per tensor.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def command(model, max_unique, report_path, per_channel, as_json):
    """Check that clustering survived conversion: every weight tensor of MODEL.tflite holds at most
    N unique values (per channel with --per-channel), or its own layer's N (--report, NAME=N).

    Exit status: 0 all pass, 1 some fail (listed), 2 unreadable file or bad usage. Use it to gate CI.
    """
    from edgeclust.errors import ConfigError
    from edgeclust.pipeline.expected_counts import parse_pairs
    from edgeclust.pipeline.tflite_files import verify_file

    if any("=" not in v and (not v.strip().lstrip("-").isdigit() or int(v) < MIN_CLUSTERS) for v in max_unique):
        shown = next(v for v in max_unique if "=" not in v)
        raise ConfigError(
            f"--max-unique must be the number of clusters, an integer >= {MIN_CLUSTERS}. Received: --max-unique {shown}"
        )
    default, by_layer = parse_pairs(max_unique)
    layers = {}
    if report_path is not None:
        from edgeclust.pipeline.expected_counts import counts_from_report, layers_from_report

        from_report, report_per_channel = counts_from_report(report_path)
        layers = layers_from_report(report_path)
        by_layer = {**from_report, **by_layer}
        per_channel = per_channel or report_per_channel
    if default is None and not by_layer:
        raise ConfigError("give the expected counts: --max-unique N, --max-unique NAME=N, or --report report.json")
    if by_layer:
        _verify_per_layer(model, by_layer, default, per_channel, as_json, layers)
        return
    max_unique = default
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


def _verify_per_layer(model, by_layer: dict, default, per_channel: bool, as_json: bool, layers: dict) -> None:
    """Each tensor against its own layer's N (or the default N; unchecked without one); `layers`: the build's
    {tensor: layer} map, found by content (tensors it does not name are tied to layers by their names)."""
    from edgeclust.pipeline.expected_counts import check_limits
    from edgeclust.pipeline.tflite_files import inspect_file

    result = check_limits(inspect_file(model).weights, by_layer, default, per_channel=per_channel, layers=layers)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "file": str(model),
                    "passed": result.passed,
                    "per_channel": per_channel,
                    "tensors": [{**asdict(c), "passed": c.passed} for c in result.checks],
                },
                indent=2,
            )
        )
    else:
        click.echo(f"{'PASS' if result.passed else 'FAIL'}: {model}: {result.summary()}")
        for c in result.checks:
            limit = "unchecked" if c.limit is None else f"<= {c.limit}"
            mark = "ok" if c.passed else "FAIL"
            click.echo(f"  {mark:4} {c.name}: {c.count:,} unique values (layer {c.layer or '-'}: {limit})")
    if not result.passed:
        sys.exit(1)
