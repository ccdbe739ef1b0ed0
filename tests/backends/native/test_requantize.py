"""The one-shift requantization the kernels use where the shift is a right shift (ec_mbqm_right) against TFLM's
double rounding as ec_mbqm writes it, on the host under UBSan: the int32 edges, ties (multiplier 2^30) and random
pairs, for every right shift 1..31."""

from __future__ import annotations

import shutil
import subprocess

import pytest

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
