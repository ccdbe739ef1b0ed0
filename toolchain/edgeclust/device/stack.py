"""The stack a firmware needs, from its own code: gcc's per-function frames (-fstack-usage) and call graph
(-fcallgraph-info=su), one .ci file per object, read after the build.

The figure is the deepest call chain from Reset_Handler plus the deepest interrupt handler that can preempt
it (SysTick_Handler and the like, not the fault handlers, which end the firmware) with the exception frame
the core pushes for it. Functions with no figure in the graph (the C library's memcpy and memset, called
from compiled code) count as 0 and are listed: the board's stack_margin_bytes covers them. A recursive
cycle, a frame of dynamic size or a call through a pointer makes the figure unknowable; this says which.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from edgeclust.errors import FirmwareError

# flags that make gcc write a .su and a .ci file beside each object; they do not change the code
STACK_FLAGS = "-fstack-usage -fcallgraph-info=su"
ENTRY = "Reset_Handler"
# handlers that end the firmware (a crash report and exit) rather than return to it
_FATAL_HANDLERS = ("Reset_Handler", "Fault_Handler", "Default_Handler", "HardFault_Handler")
# the frame the core pushes on an exception: 8 words, 26 with the FPU's lazy context, aligned to 8 bytes
EXCEPTION_FRAME = 32
EXCEPTION_FRAME_FPU = 104 + 4

_NODE = re.compile(r'node:\s*\{\s*title:\s*"([^"]+)"\s*label:\s*"([^"]*)"')
_EDGE = re.compile(r'edge:\s*\{\s*sourcename:\s*"([^"]+)"\s*targetname:\s*"([^"]+)"')
_BYTES = re.compile(r"\\n(\d+) bytes \(([a-z,]+)\)")


@dataclass(frozen=True)
class StackUsage:
    """The worst-case stack of a firmware, in bytes, and how it was reached."""

    bytes: int
    path: tuple[str, ...]  # the deepest chain from the entry, outermost first
    handler: str | None  # the interrupt handler added on top (None: the firmware has none)
    handler_bytes: int  # its chain plus the exception frame
    unknown: tuple[str, ...]  # callees without a figure (library code), counted as 0

    def line(self) -> str:
        chain = " -> ".join(self.path)
        extra = f" + {self.handler} {self.handler_bytes}" if self.handler else ""
        return f"stack {self.bytes:,} bytes measured ({chain}{extra})"


def parse_callgraphs(texts: Iterable[str]) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Frames (function -> bytes; external functions absent) and calls (function -> callees) of .ci texts.
    A frame of dynamic size is a FirmwareError naming the function."""
    frames: dict[str, int] = {}
    calls: dict[str, set[str]] = {}
    for text in texts:
        for title, label in _NODE.findall(text):
            found = _BYTES.search(label)
            if found is None:
                continue  # an external function: no figure
            if found.group(2) != "static":
                raise FirmwareError(
                    f"the stack cannot be measured: {title} has a frame of {found.group(2)} size "
                    "(a variable-length array or alloca)"
                )
            frames[title] = max(frames.get(title, 0), int(found.group(1)))
        for source, target in _EDGE.findall(text):
            calls.setdefault(source, set()).add(target)
    return frames, calls


def stack_usage(texts: Iterable[str], *, fpu: bool) -> StackUsage:
    """The worst-case stack of the program whose .ci files are `texts` (see the module docstring)."""
    frames, calls = parse_callgraphs(texts)
    if ENTRY not in frames:
        raise FirmwareError(f"the stack cannot be measured: no {ENTRY} in the call graph")
    unknown: set[str] = set()
    memo: dict[str, tuple[int, tuple[str, ...]]] = {}

    def deepest(name: str, active: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
        if name in memo:
            return memo[name]
        if name in active:
            cycle = " -> ".join((*active[active.index(name) :], name))
            raise FirmwareError(f"the stack cannot be measured: recursion {cycle}")
        if name.startswith("__indirect_call"):
            raise FirmwareError(f"the stack cannot be measured: {active[-1]} calls through a pointer")
        if name not in frames:
            unknown.add(name)
            return 0, (name,)
        best, chain = 0, ()
        for callee in sorted(calls.get(name, ())):
            depth, sub = deepest(callee, (*active, name))
            if depth > best or not chain:
                best, chain = depth, sub
        memo[name] = (frames[name] + best, (name, *chain))
        return memo[name]

    total, path = deepest(ENTRY, ())
    handlers = [n for n in frames if n.endswith("_Handler") and n not in _FATAL_HANDLERS]
    frame = EXCEPTION_FRAME_FPU if fpu else EXCEPTION_FRAME
    handler, handler_bytes = None, 0
    for name in sorted(handlers):
        depth = deepest(name, ())[0] + frame
        if depth > handler_bytes:
            handler, handler_bytes = name, depth
    return StackUsage(total + handler_bytes, path, handler, handler_bytes, tuple(sorted(unknown)))
