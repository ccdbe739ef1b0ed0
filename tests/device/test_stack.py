"""The stack figure from gcc's call graph (device.stack): the deepest chain, the interrupt on top, and the
call graphs it refuses to guess about."""

from __future__ import annotations

import pytest

from edgeclust.device.stack import EXCEPTION_FRAME, EXCEPTION_FRAME_FPU, stack_usage
from edgeclust.errors import FirmwareError


def _ci(nodes: dict[str, int | str | None], edges: list[tuple[str, str]]) -> str:
    lines = ['graph: { title: "x.c"']
    for name, size in nodes.items():
        if size is None:
            lines.append(f'node: {{ title: "{name}" label: "{name}\\n<built-in>" shape : ellipse }}')
        else:
            kind = "static" if isinstance(size, int) else size
            number = size if isinstance(size, int) else 16
            lines.append(f'node: {{ title: "{name}" label: "{name}\\nx.c:1:1\\n{number} bytes ({kind})" }}')
    lines += [f'edge: {{ sourcename: "{a}" targetname: "{b}" }}' for a, b in edges]
    return "\n".join(lines + ["}"])


def test_deepest_chain_plus_the_handler_and_its_frame():
    startup = _ci({"Reset_Handler": 8, "SysTick_Handler": 0, "Fault_Handler": 400}, [("Reset_Handler", "main")])
    app = _ci(
        {"main": 16, "a": 100, "b": 40, "c": 300, "memcpy": None},
        [("main", "a"), ("main", "b"), ("a", "memcpy"), ("b", "c"), ("b", "memcpy")],
    )
    usage = stack_usage([startup, app], fpu=False)
    assert usage.path == ("Reset_Handler", "main", "b", "c")
    assert usage.bytes == 8 + 16 + 40 + 300 + EXCEPTION_FRAME
    assert usage.handler == "SysTick_Handler" and usage.unknown == ("memcpy",)
    assert stack_usage([startup, app], fpu=True).bytes == 8 + 16 + 40 + 300 + EXCEPTION_FRAME_FPU


@pytest.mark.parametrize(
    ("nodes", "edges", "message"),
    [
        ({"Reset_Handler": 8, "f": 16}, [("Reset_Handler", "f"), ("f", "f")], "recursion f -> f"),
        ({"Reset_Handler": 8, "f": "dynamic"}, [("Reset_Handler", "f")], "f has a frame of dynamic size"),
        ({"Reset_Handler": 8, "f": 16}, [("Reset_Handler", "f"), ("f", "__indirect_call")], "f calls through"),
        ({"main": 8}, [], "no Reset_Handler"),
    ],
)
def test_a_graph_it_cannot_bound_is_refused(nodes, edges, message):
    with pytest.raises(FirmwareError, match=message):
        stack_usage([_ci(nodes, edges)], fpu=False)
