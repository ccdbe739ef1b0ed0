"""greedy_tflm against TFLM's own GreedyMemoryPlanner, compiled with the host's g++ from $TFLM_ROOT."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from edgeclust.align import align
from edgeclust.lower.memory import BufferUse, greedy_tflm, plan

pytestmark = pytest.mark.tflm_tree

HARNESS = r"""
// Reads graphs of (size first last) buffers from stdin; prints TFLM's arena size and each buffer's offset.
#include <cstdio>
#include "tensorflow/lite/micro/memory_planner/greedy_memory_planner.h"
int main() {
  static unsigned char scratch[1 << 16];
  int graphs = 0;
  if (std::scanf("%d", &graphs) != 1) return 2;
  for (int g = 0; g < graphs; ++g) {
    tflite::GreedyMemoryPlanner planner;
    if (planner.Init(scratch, sizeof scratch) != kTfLiteOk) return 3;
    int n = 0;
    if (std::scanf("%d", &n) != 1) return 2;
    for (int i = 0; i < n; ++i) {
      int size, first, last;
      if (std::scanf("%d %d %d", &size, &first, &last) != 3) return 2;
      if (planner.AddBuffer(size, first, last) != kTfLiteOk) return 4;
    }
    std::printf("%zu", planner.GetMaximumMemorySize());
    for (int i = 0; i < n; ++i) {
      int offset = -1;
      if (planner.GetOffsetForBuffer(i, &offset) != kTfLiteOk) return 5;
      std::printf(" %d", offset);
    }
    std::printf("\n");
  }
  return 0;
}
"""


@pytest.fixture(scope="module")
def tflm_planner(tmp_path_factory) -> Path:
    """TFLM's greedy planner built into a small host program (needs $TFLM_ROOT and g++)."""
    root = os.environ.get("TFLM_ROOT", "")
    if not root:
        pytest.skip(
            "TFLM_ROOT is not set: build a TFLM tree as DEVELOPERS.md says, then run "
            "`TFLM_ROOT=/path/to/tree pytest -m tflm_tree tests/lower`"
        )
    source = Path(root) / "tensorflow" / "lite" / "micro" / "memory_planner" / "greedy_memory_planner.cc"
    if not source.is_file():
        pytest.fail(f"TFLM_ROOT={root} has no {source.relative_to(root)}")
    if not shutil.which("g++"):
        pytest.fail("g++ not found: install the host compiler (apt package g++)")
    work = tmp_path_factory.mktemp("tflm_planner")
    (work / "harness.cc").write_text(HARNESS)
    exe = work / "harness"
    subprocess.run(
        [
            "g++",
            "-std=c++17",
            "-O1",
            "-DTF_LITE_STRIP_ERROR_STRINGS",
            f"-I{root}",
            str(work / "harness.cc"),
            str(source),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
    )
    return exe


def random_graphs(count: int, seed: int) -> list[list[BufferUse]]:
    """Random lifetimes with many equal sizes (so the stable order of ties matters) and some zero sizes."""
    rng = random.Random(seed)
    graphs = []
    for _ in range(count):
        buffers = []
        for i in range(rng.randint(1, 24)):
            first = rng.randint(0, 12)
            last = rng.randint(first, min(12, first + rng.randint(0, 5)))
            size = rng.choice([0, 1, 16, 17, 100, 784, 5408, rng.randint(1, 9000)])
            buffers.append(BufferUse(f"b{i}", size, first, last))
        graphs.append(buffers)
    return graphs


def run_tflm(exe: Path, graphs: list[list[BufferUse]], alignment: int) -> list[tuple[int, list[int]]]:
    """TFLM's arena and offsets per graph; sizes aligned up first, as MicroAllocator does before AddBuffer."""
    lines = [str(len(graphs))]
    for buffers in graphs:
        lines.append(str(len(buffers)))
        lines += [f"{align(b.size, alignment)} {b.first} {b.last}" for b in buffers]
    out = subprocess.run(
        [str(exe)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    results = []
    for line in out.splitlines():
        arena, *offsets = (int(v) for v in line.split())
        results.append((arena, offsets))
    assert len(results) == len(graphs)
    return results


@pytest.mark.parametrize("alignment", [16, 1])
def test_greedy_tflm_matches_tflms_planner_offset_for_offset(tflm_planner, alignment):
    graphs = random_graphs(400, seed=alignment)
    for buffers, (arena, offsets) in zip(graphs, run_tflm(tflm_planner, graphs, alignment)):
        ours = greedy_tflm(buffers, alignment=alignment)
        assert [ours.offsets[b.name] for b in buffers] == offsets, buffers
        assert ours.arena_bytes == arena


def test_plan_is_never_above_tflms_planner(tflm_planner):
    graphs = random_graphs(200, seed=7)
    beaten = 0
    for buffers, (arena, _) in zip(graphs, run_tflm(tflm_planner, graphs, 16)):
        ours = plan(buffers)
        assert ours.arena_bytes <= arena
        beaten += ours.arena_bytes < arena
    assert beaten > 0  # the random graphs include ones where TFLM's greedy order fragments the arena
