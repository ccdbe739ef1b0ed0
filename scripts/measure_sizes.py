"""Measure the TFLM runtime's flash and RAM per op family with arm-none-eabi-size; writes runtime_sizes.toml.

    python scripts/measure_sizes.py --tflm-root $TFLM_ROOT [--out PATH] [--jobs N]

For each CPU profile it takes a reference QEMU board's compiler flags, builds the TFLM library with the
generated project's Makefile, then links small firmwares with the project's startup code and linker script:
one "core" firmware (MicroInterpreter, AllocateTensors, Invoke, newlib-nano printf, startup; no ops) and one
per op family that adds that family's ops to a MicroMutableOpResolver. core_flash = text + data of the core
firmware; a family's price = (text + data with it) - core_flash; core_ram = data + bss of the core firmware
without the heap reserve and the (16-byte) arena. Summing families over-counts code two families share, so
the budget errs on the safe side. Maintainer tool: needs a TFLM tree and the cross compiler.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path

from edgeclust.backends.tflm import render, resolver
from edgeclust.backends.tflm.arena import tflm_arena
from edgeclust.codegen import board as board_mod
from edgeclust.codegen import project
from edgeclust.device import build as device_build

RUNTIME_SIZES = Path(__file__).resolve().parents[1] / "toolchain/edgeclust/backends/tflm/runtime_sizes.toml"
# the QEMU board whose compiler flags and startup code measure each CPU profile
PROFILE_BOARDS = {
    "cortex-m4f": "qemu_mps2_an386",
    "cortex-m3": "qemu_lm3s6965evb",
    "cortex-m0": "qemu_microbit",
    "cortex-m7": "qemu_mps2_an500",
    "cortex-m55": "qemu_mps3_an547",
}
_RESOLVER = "tflite::MicroMutableOpResolver<128>"

_MAIN = r"""
#include <cstdio>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
void RegisterFamily(RESOLVER& resolver);
extern "C" void console_init(void);
extern const unsigned char g_model[];
alignas(16) static unsigned char arena[16];
int main() {
  console_init();
  RESOLVER resolver;  // on the stack: the firmware keeps a MicroMutableOpResolver<N> of its own size
  RegisterFamily(resolver);
  tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, arena, sizeof(arena));
  if (interpreter.AllocateTensors() != kTfLiteOk || interpreter.Invoke() != kTfLiteOk) {
    printf("no model\n");
    return 1;
  }
  printf("%u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));
  return 0;
}
alignas(16) const unsigned char g_model[16] = {0};
""".replace("RESOLVER", _RESOLVER)


def family_calls() -> dict[str, list[str]]:
    """Op family -> its resolver calls, from resolver.OPS."""
    families: dict[str, list[str]] = {}
    for _op, (call, family) in sorted(resolver.OPS.items()):
        families.setdefault(family, []).append(call)
    return dict(sorted(families.items()))


def measure_profile(
    profile: str, tflm_root: Path, templates_dir: Path, boards_dir: Path, work: Path, jobs: int
) -> dict:
    """{"core_flash", "core_ram", "families": {family: flash bytes}} for one CPU profile."""
    board = board_mod.load_board(PROFILE_BOARDS[profile], boards_dir)
    roomy = dataclasses.replace(board, flash_bytes=16 << 20, ram_bytes=16 << 20)
    proj = work / profile
    interface = render.ModelInterface(
        inputs=(render.TensorSpec("x", (1, 1), "int8", 1.0, 0),),
        outputs=(render.TensorSpec("y", (1, 1), "int8", 1.0, 0),),
    )
    files = render.render_files(
        model_data=b"\0\0\0\0TFL3\0\0\0\0",
        op_names=[],
        board=roomy,
        interface=interface,
        self_test=[],
        arena=tflm_arena(16),
        templates_dir=templates_dir,
    )
    project.write_files(proj, files, force=True)
    lib_dir = device_build.tflm_build_dir(board, tflm_root)
    subprocess.run(
        [
            "make",
            f"-j{jobs}",
            f"TFLM_ROOT={tflm_root}",
            f"TFLM_BUILD={lib_dir}",
            f"{lib_dir}/libtflm.a",
            "build/app/startup.o",
        ],
        cwd=proj,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    compile_cmd = shlex.split((lib_dir / "flags").read_text().strip())
    link_cmd = [
        "arm-none-eabi-g++",
        *board.cflags,
        "-T",
        "linker.ld",
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-Wl,--gc-sections",
    ]  # the console is in startup.o
    (proj / "measure_main.cc").write_text(_MAIN)
    variants = {"core": []} | family_calls()

    def build(name: str, calls: list[str]) -> tuple[str, dict]:
        body = "".join(f"  resolver.{call};\n" for call in calls)
        source = proj / f"family_{name}.cc"
        source.write_text(
            '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n'
            f"void RegisterFamily({_RESOLVER}& resolver) {{\n{body}}}\n"
        )
        obj = source.with_suffix(".o")
        subprocess.run([*compile_cmd, "-c", str(source), "-o", str(obj)], check=True)
        elf = proj / f"measure_{name}.elf"
        subprocess.run(
            [
                *link_cmd,
                "-o",
                str(elf),
                str(proj / "measure_main.o"),
                str(obj),
                "build/app/startup.o",
                str(lib_dir / "libtflm.a"),
                "-lm",
            ],
            cwd=proj,
            check=True,
        )
        return name, _sections(elf)

    subprocess.run([*compile_cmd, "-c", str(proj / "measure_main.cc"), "-o", str(proj / "measure_main.o")], check=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        results = dict(pool.map(lambda item: build(*item), variants.items()))
    core = results.pop("core")
    core_flash = _flash(core)
    return {
        "measured": True,
        "reference_board": board.id,
        "cflags": " ".join(board.cflags),
        "core_flash": core_flash,
        "core_ram": core.get(".data", 0) + core.get(".bss", 0) - 16,
        "families": {name: _flash(s) - core_flash for name, s in sorted(results.items())},
    }


def _sections(elf: Path) -> dict[str, int]:
    text = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], check=True, capture_output=True, text=True).stdout
    sizes = {}
    for line in text.splitlines():
        match = re.match(r"^(\.\S+)\s+(\d+)\s+\d+", line)
        if match:
            sizes[match.group(1)] = int(match.group(2))
    return sizes


def _flash(sections: dict[str, int]) -> int:
    ram_only = {".bss", ".heap"}
    skip = {".comment", ".ARM.attributes"}
    return sum(v for k, v in sections.items() if k not in ram_only and k not in skip and not k.startswith(".debug"))


def write_table(path: Path, profiles: dict, tflm_commit: str) -> None:
    lines = [
        "# TFLM runtime sizes per CPU profile, in bytes, measured with arm-none-eabi-size (GCC 12.2, -Os,",
        "# newlib-nano, reference kernels) by `python scripts/measure_sizes.py --tflm-root TREE`.",
        f"# TFLM tree: {tflm_commit}.",
        "# core_flash: text + data of a firmware with the interpreter, AllocateTensors, Invoke, printf and the",
        "#   startup code but no ops; core_ram: its .data + .bss (heap reserve and arena aside).",
        "# families.<f>: flash added by the ops of kernels/<f>.cc (edgeclust/backends/tflm/resolver.py maps op",
        "#   -> family).",
        "# Each family is measured alone, so a sum over several counts the helpers they share more than once: the",
        "# budget is an upper bound (a 6-op int8 CNN on the M4F: 86,784 bytes priced, 64,656 linked).",
        "",
    ]
    lines[-1:-1] = [
        "# measured = true: the row was measured as above. measured = false: an estimate, priced with the rows of",
        "#   `estimated_from` (a profile of the same instruction set family) until a TFLM tree is at hand.",
    ]
    for name, p in profiles.items():
        head = [f'[profiles."{name}"]']
        if "estimated_from" in p:  # kept as it was: not measured in this run
            lines += [
                *head,
                "measured = false",
                f'estimated_from = "{p["estimated_from"]}"',
                f'reference_board = "{p["reference_board"]}"',
                f'cflags = "{p["cflags"]}"',
                "",
            ]
            continue
        lines += [
            *head,
            "measured = true",
            f'reference_board = "{p["reference_board"]}"',
            f'cflags = "{p["cflags"]}"',
            f"core_flash = {p['core_flash']}",
            f"core_ram = {p['core_ram']}",
            "",
            f'[profiles."{name}".families]',
        ]
        lines += [f"{family} = {size}" for family, size in p["families"].items()]
        lines.append("")
    path.write_text("\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflm-root", default=os.environ.get("TFLM_ROOT"), required=not os.environ.get("TFLM_ROOT"))
    parser.add_argument("--out", type=Path, default=RUNTIME_SIZES)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tflm-commit", default="unknown commit", help="recorded in the table's header")
    parser.add_argument(
        "--profiles",
        nargs="+",
        choices=sorted(PROFILE_BOARDS),
        default=list(PROFILE_BOARDS),
        help="measure only these profiles; the others keep their rows from --out",
    )
    args = parser.parse_args(argv)
    from edgeclust import resources

    root = device_build.resolve_tflm_root(args.tflm_root)
    profiles = {}
    if args.out.is_file():
        import tomllib

        profiles = tomllib.loads(args.out.read_text()).get("profiles", {})
    with tempfile.TemporaryDirectory(prefix="edgeclust-sizes-") as tmp:
        for profile in args.profiles:
            profiles[profile] = measure_profile(
                profile, root, resources.templates_dir(), resources.boards_dir(), Path(tmp), args.jobs
            )
    profiles = {name: profiles[name] for name in PROFILE_BOARDS if name in profiles}
    write_table(args.out, profiles, args.tflm_commit)
    for name, p in profiles.items():
        if "estimated_from" in p:
            print(f"{name}: not measured (estimated from {p['estimated_from']})")
            continue
        print(
            f"{name}: core {p['core_flash']:,} bytes flash, {p['core_ram']:,} bytes RAM; "
            f"{len(p['families'])} op families"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
