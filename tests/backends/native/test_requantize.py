"""The one-shift requantization the kernels use where the shift is a right shift (ec_mbqm_right) against TFLM's
double rounding as ec_mbqm writes it, on the host under UBSan: the int32 edges, ties (multiplier 2^30) and random
pairs, for every right shift 1..31; and the multiplier words that carry the shifts on flash."""

from __future__ import annotations

import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from edgeclust.backends.native import fixed_point as fp
from edgeclust.backends.native.lowering import _nonzero_multipliers
from edgeclust.backends.native.records import Requant
from edgeclust.errors import EdgeclustError
from edgeclust.resources import templates_dir

CHECK = r"""
#include "ec_kernels.c"
#include <stdio.h>

static uint64_t state = 88172645463325252ull;
static uint32_t next(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return (uint32_t)state; }

static long bad, checked;
static void check(int32_t x, int32_t m, int r) {
  ++checked;
  if (ec_mbqm_right(x, m, r, ec_round_right(r)) != ec_mbqm(x, m, -r) && bad++ < 5)
    printf("x=%ld m=%ld r=%d\n", (long)x, (long)m, r);
}

int main(void) {
  static const int32_t xs[] = {0, 1, -1, 2, -2, 3, -3, INT32_MAX, INT32_MIN, INT32_MIN + 1, INT32_MAX - 1,
                               1 << 30, -(1 << 30), 12345, -12345};
  static const int32_t ms[] = {0, 1, 2, 3, INT32_MAX, INT32_MAX - 1, 1 << 30, (1 << 30) + 1, 1518500250};
  for (int r = 1; r <= 31; ++r) {
    for (unsigned i = 0; i < sizeof xs / sizeof xs[0]; ++i)
      for (unsigned j = 0; j < sizeof ms / sizeof ms[0]; ++j) check(xs[i], ms[j], r);
    for (int32_t x = -3000; x <= 3000; ++x) check(x * 16384 + (x & 7), 1 << 30, r);
    for (int k = 0; k < 20000; ++k) {
      int32_t x = (int32_t)next();
      if (k & 1) x >>= next() % 31;
      check(x, (int32_t)(next() & 0x7FFFFFFFu), r);
    }
  }
  printf("%ld checked, %ld differ\n", checked, bad);
  return bad != 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host's gcc")
def test_one_shift_requantization_equals_tflm_double_rounding(tmp_path):
    runtime = templates_dir() / "runtime" / "native"
    (tmp_path / "check.c").write_text(CHECK)
    exe = tmp_path / "check"
    flags = ["-O1", "-std=c99", "-fsanitize=undefined", "-fno-sanitize-recover=all", "-Wall", "-Wextra"]
    subprocess.run(["gcc", *flags, "-I", str(runtime), str(tmp_path / "check.c"), "-o", str(exe), "-lm"], check=True)
    done = subprocess.run([str(exe)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and " 0 differ" in done.stdout, done.stdout + done.stderr


def _decode(q, channel: int) -> tuple[int, int]:
    """ec_requant_multiplier and ec_requant_shift (ec_kernels.h) in Python."""
    i = channel if q.per_channel else 0
    i = i if q.entries is None else int(q.entries[i])
    word = int(q.multiplier_words.view(np.uint32)[i])
    return (word & 0x3FFFFFFF) | 0x40000000, int(q.shift_bytes[i * q.shift_stride]) + (word >> 30)


@pytest.mark.parametrize(
    "shifts",
    [[-7, -6, -9, -8, -7], [-7, -6, -10, -8, -7], [-31, -7, -7, -6, -8], [3]],
    ids=["packed", "spread-of-five", "zero-scale-channel", "per-tensor"],
)
def test_multiplier_words_carry_the_shifts_where_they_are_within_four(shifts):
    rng = np.random.default_rng(0)
    m = rng.integers(2**30, 2**31, len(shifts)).astype(np.int32)
    q = Requant(np.zeros(len(shifts), np.int32), m, np.array(shifts, np.int8), 0, -128, 127)
    assert q.packs_shift == (max(shifts) - min(shifts) <= 3)
    assert q.shift_bytes.size == (1 if q.packs_shift else len(shifts))
    assert [_decode(q, c) for c in range(len(shifts))] == list(zip(m.tolist(), shifts))


@pytest.mark.parametrize("spread", [3, 6], ids=["packed-shifts", "a-shift-byte-a-channel"])
def test_channels_that_share_a_scale_share_a_multiplier_word_on_flash(spread):
    """Clustering leaves a layer a few channel scales: 64 channels of 5 scales store 5 words and a byte each."""
    rng = np.random.default_rng(1)
    scales = rng.integers(2**30, 2**31, 5).astype(np.int32)
    shifts = np.array([-7, -7 - spread, -8, -9, -7], np.int8)
    pick = rng.integers(0, 5, 64)
    q = Requant(np.zeros(64, np.int32), scales[pick], shifts[pick], 0, -128, 127)
    assert q.entries is not None and q.entries.dtype == np.uint8 and q.multiplier_words.size == 5
    assert q.shift_bytes.size == (1 if q.packs_shift else 5)
    assert [_decode(q, c) for c in range(64)] == list(zip(scales[pick].tolist(), shifts[pick].tolist()))
    distinct = Requant(np.zeros(4, np.int32), scales[:4], shifts[:4], 0, -128, 127)
    assert distinct.entries is None and distinct.multiplier_words.size == 4  # a byte a channel would not pay


def test_a_zero_multiplier_becomes_two_to_the_thirty_with_shift_minus_31():
    """TFLM's zero multiplier gives 0 for every accumulator; (2^30, -31) too, but at -2^31 and 2^31 - 1."""
    xs = [-(2**31) + 1, -(2**31) + 2, -(2**30), -1, 0, 1, 2**30, 2**31 - 2] + list(range(-3000, 3000, 7))
    assert all(fp.mbqm(x, 2**30, -31) == 0 == fp.mbqm(x, 0, 0) for x in xs)
    assert fp.mbqm(2**31 - 1, 2**30, -31) == 1
    op = SimpleNamespace(name="CONV_2D")
    rows = np.full((2, 9), 127, np.int8)
    m, s = _nonzero_multipliers(op, [0, 2**30 + 5], [0, -7], np.array([100, -100]), rows)
    assert (m, s) == ([2**30, 2**30 + 5], [-31, -7])
    with pytest.raises(EdgeclustError, match="below 2"):
        _nonzero_multipliers(op, [0], [0], np.array([2**31 - 100]), rows)
