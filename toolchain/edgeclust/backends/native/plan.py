"""Buffers for the steps' tensors: lifetimes from the step order, offsets from lower/memory's planner.

An ADD writes in place over an input that dies at that step; the model's input and output live throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from edgeclust.align import TENSOR_ALIGNMENT
from edgeclust.backends.native.program import Buffer, Edge, Program
from edgeclust.backends.native.records import AddStep, Step
from edgeclust.lower import memory as memory_plan
from edgeclust.lower.graph import Graph, GraphTensor


def plan_program(
    graph: Graph, steps: tuple[Step, ...], buffer_of: Mapping[int, str], root: Callable[[int], int]
) -> Program:
    """The Program: `steps` with every buffer they name placed in one arena (buffer_of: root tensor -> name)."""
    model_in, model_out = root(graph.inputs[0]), root(graph.outputs[0])
    names = dict(buffer_of)
    names.setdefault(model_out, "model_output")  # a model whose output no step writes
    tensor_of = {name: t for t, name in names.items()}
    input_name, output_name = names[model_in], names[model_out]
    n = len(steps)
    first: dict[str, int] = {input_name: 0}
    last: dict[str, int] = {input_name: 0}
    for s, step in enumerate(steps):
        for name in step.outputs:
            first.setdefault(name, s)
            last[name] = max(last.get(name, s), s)
        for name in step.inputs:
            last[name] = max(last[name], s)
    last[output_name] = max(n - 1, 0)
    first.setdefault(output_name, 0)
    in_place: dict[str, str] = {}
    for s, step in enumerate(steps):
        if isinstance(step, AddStep):
            for name in step.inputs:
                if last[name] == s and name != input_name and name not in in_place.values():
                    in_place[step.outputs[0]] = name
                    break
    order = sorted(first, key=lambda name: tensor_of[name])
    sizes = {name: _nbytes(graph.tensors[tensor_of[name]]) for name in order}
    uses = [memory_plan.BufferUse(name, sizes[name], first[name], last[name], in_place.get(name)) for name in order]
    plan = memory_plan.plan(uses, alignment=TENSOR_ALIGNMENT)
    memory_plan.check_plan(plan, uses)
    buffers = {
        name: Buffer(
            name,
            sizes[name],
            graph.tensors[tensor_of[name]].dtype,
            plan.offsets[name],
            tensor_of[name],
            graph.tensors[tensor_of[name]].name,
        )
        for name in order
    }
    return Program(
        steps=steps,
        buffers=tuple(buffers[name] for name in order),
        input=buffers[input_name],
        output=buffers[output_name],
        arena_bytes=max(plan.arena_bytes, TENSOR_ALIGNMENT),
        arena_lower_bound=plan.lower_bound,
        op_names=tuple(sorted({op.name for op in graph.ops})),
        model_input=_edge(graph.tensors[graph.inputs[0]]),
        model_output=_edge(graph.tensors[graph.outputs[0]]),
    )


def _edge(t: GraphTensor) -> Edge:
    q = t.quant
    return Edge(t.name, tuple(t.shape), t.dtype, q.scale if q else None, q.zero_point if q else None)


def _nbytes(t: GraphTensor) -> int:
    return t.size * np.dtype(t.dtype).itemsize
