"""Buffers for the steps' tensors: lifetimes from the step order, offsets from lower/memory's planner.

An ADD writes in place over an input that dies at that step, and so do the depthwise and 1x1 convolutions
the plan chooses to run in place (inplace.py); the model's output lives to the end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from edgeclust.align import TENSOR_ALIGNMENT
from edgeclust.backends.native import inplace
from edgeclust.backends.native.program import Buffer, Edge, Program
from edgeclust.backends.native.records import AddStep, ConvStep, DepthwiseStep, FullyConnectedStep, Step
from edgeclust.lower import memory as memory_plan
from edgeclust.lower.graph import Graph, GraphTensor

# whether the plan may run convolutions in place (inplace.py); off, the arena is the whole-tensor plan's
CONV_IN_PLACE = True

# ec_kernels.c's fast paths: the largest filter built as a patch (EC_PATCH), the longest packed row decoded
# (longer ones stream), and the decoded channels a block of the pixel-major path holds at most
PATCH_BYTES = 256
LONGEST_DECODED_ROW = 1280
PIXEL_MAJOR_BLOCK_BYTES = 1024
# the int16 im2col path (ec_conv_im2col): the longest window it widens, and the decoded rows a block holds
IM2COL_MAX_K = 768
IM2COL_BLOCK_BYTES = 4096
# ec_add's tables (2 KB of scratch) from this many elements on: building them costs ~15k instructions
ADD_TABLES_FROM = 512
# an in-place 1x1 convolution with 4-bit rows (ec_conv_1x1_ahead): the pixels after each window block whose
# outputs its scratch holds, so that a row pair decoded once serves 8 + this many pixels
INPLACE_1X1_AHEAD_PIXELS = 24


def plan_program(
    graph: Graph, steps: tuple[Step, ...], buffer_of: Mapping[int, str], root: Callable[[int], int]
) -> Program:
    """The Program: `steps` with every buffer they name placed in one arena (buffer_of: root tensor -> name),
    and each kernel's scratch (scratch_row_bytes) placed there for its step alone. Convolutions run in place
    where that makes the arena smaller (inplace.py); arena_lower_bound stays the whole-tensor bound (every
    tensor whole, no convolution in place, no scratch)."""
    model_in, model_out = root(graph.inputs[0]), root(graph.outputs[0])
    names = dict(buffer_of)
    names.setdefault(model_out, "model_output")  # a model whose output no step writes
    tensor_of = {name: t for t, name in names.items()}
    input_name, output_name = names[model_in], names[model_out]
    sizes = {name: _nbytes(graph.tensors[t]) for name, t in tensor_of.items()}

    def uses_of(steps: tuple[Step, ...], with_scratch: bool = True) -> list[memory_plan.BufferUse]:
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
        in_place: dict[str, tuple[str, int]] = {}  # output -> (the input it overwrites, its offset from it)
        taken: set[str] = set()
        for s, step in enumerate(steps):
            if isinstance(step, inplace.ShiftedConvStep | inplace.PointwiseDepthwiseStep):  # the model input too
                in_place[step.outputs[0]] = (step.inputs[0], -step.shift)
                taken.add(step.inputs[0])
            elif isinstance(step, AddStep | inplace.InPlaceDepthwiseStep | inplace.InPlaceConvStep):
                for name in step.inputs[:1] if not isinstance(step, AddStep) else step.inputs:
                    if last[name] == s and name != input_name and name not in taken:
                        in_place[step.outputs[0]] = (name, 0)
                        taken.add(name)
                        break
        order = sorted(first, key=lambda name: (tensor_of.get(name, len(graph.tensors)), name))
        uses = [
            memory_plan.BufferUse(name, sizes[name], first[name], last[name], *in_place.get(name, (None, 0)))
            for name in order
        ]
        if with_scratch:  # each kernel's scratch, alive at its step alone
            rows = [scratch_row_bytes(step) for step in steps]
            uses += [
                memory_plan.BufferUse(scratch_name(step), 2 * row, s, s)
                for s, (step, row) in enumerate(zip(steps, rows))
                if row
            ]
        return uses

    bound = memory_plan.lower_bound(uses_of(steps, with_scratch=False), alignment=TENSOR_ALIGNMENT)
    steps, plan, uses, choices = _choose_fusions(steps, uses_of, sizes, input_name)
    memory_plan.check_plan(plan, uses)
    inplace.check_steps(steps, plan.offsets, sizes, keep=(output_name,))
    buffers = {}
    for use in uses:
        t = tensor_of.get(use.name)
        tensor = graph.tensors[t] if t is not None else None
        buffers[use.name] = Buffer(
            use.name,
            use.size,
            tensor.dtype if tensor is not None else "int8",
            plan.offsets[use.name],
            t if t is not None else -1,
            tensor.name if tensor is not None else "",
        )
    return Program(
        steps=steps,
        buffers=tuple(buffers[use.name] for use in uses),
        input=buffers[input_name],
        output=buffers[output_name],
        arena_bytes=max(plan.arena_bytes, TENSOR_ALIGNMENT),
        arena_lower_bound=bound,
        op_names=tuple(sorted({op.name for op in graph.ops})),
        model_input=_edge(graph.tensors[graph.inputs[0]]),
        model_output=_edge(graph.tensors[graph.outputs[0]]),
        in_place=choices,
        scratch=tuple(  # the scratch buffers planned above: two rows each
            (step.name, buffers[scratch_name(step)], buffers[scratch_name(step)].size // 2)
            for step in steps
            if scratch_name(step) in buffers
        ),
    )


def scratch_name(step: Step) -> str:
    return f"{step.name}_scratch"


def depthwise_plane_bytes(w) -> int:
    """ec_kernels.c ec_dw_plane_bytes: the padded plane of one channel that the 3x3 depthwise path (dilation 1,
    stride 1 or 2, padding 0 or 1) holds, 4 bytes of slack included; 0 where that path does not apply."""
    if (w.k_h, w.k_w, w.dil_h, w.dil_w) != (3, 3, 1, 1) or w.stride_h not in (1, 2) or w.stride_w not in (1, 2):
        return 0
    if w.pad_h > 1 or w.pad_w > 1:
        return 0
    return ((w.out_w - 1) * w.stride_w + 3) * ((w.out_h - 1) * w.stride_h + 3) + 4


def scratch_row_bytes(step: Step) -> int:
    """One row of the scratch `step`'s kernel may use (ec_kernels.c EC_ROW_SCRATCH; the scratch holds two, placed
    in the arena for that step alone, ec_use_scratch), 0 for none: the longest row its fast paths decode or
    build there. A convolution other than the 1x1 matrix product with
    k <= IM2COL_MAX_K takes the int16 im2col path (ec_conv_im2col): four pixels' windows widened to int16
    (8 * k4 bytes, k4 = k rounded up to 4) and an int8 patch (k4), then, for packed rows or k not a multiple
    of 4, its rows decoded or copied k4 apart (all channels, up to IM2COL_BLOCK_BYTES, one row at least); an
    ADD of ADD_TABLES_FROM elements or more holds its two tables of 256 int32 (2 KB). Packed 1x1 convolutions
    decode two rows of in_c (plain int8 ones read their rows on flash); 4-bit ones with in_c a multiple of 4
    decode them as int16 pairs, 2 * in_c bytes each (ec_row4_pairs), and in place with out_c <= in_c hold the
    outputs of INPLACE_1X1_AHEAD_PIXELS pixels after each window block besides (ec_conv_1x1_ahead); other
    packed convolutions decode two rows of k (a small filter's pixel-major path, on the Cortex-M55, as many
    channels as fit PIXEL_MAJOR_BLOCK_BYTES, and so does a packed convolution with a fused max pool, two
    channels at least); a 3x3 depthwise convolution not in place holds one channel's padded plane in both rows
    (depthwise_plane_bytes, up to two LONGEST_DECODED_ROW); a fully connected layer widens its n inputs to
    int16 (4-bit rows: all n, and with rows in groups, step.order, a group's pair table of 256 int32 after
    them; plain int8 rows: the whole fours of them, four rows a pass). A row longer than the scratch makes its
    kernel take a slower path, so this sizes the scratch, never correctness."""
    if isinstance(step, inplace.PointwiseDepthwiseStep):  # each row's two kernel calls, one after the other
        w = step.depthwise.window
        band = dataclasses.replace(step.depthwise, window=dataclasses.replace(w, in_h=inplace.ring_rows(w), out_h=1))
        return max(scratch_row_bytes(step.pointwise), scratch_row_bytes(band))
    if isinstance(step, ConvStep):
        return -(-_conv_scratch_row(step) // 4) * 4
    need = 0
    packed = isinstance(step, FullyConnectedStep) and step.weights.table is not None
    if isinstance(step, AddStep) and step.size >= ADD_TABLES_FROM:
        need = 1024  # ec_add's two tables of 256 int32
    elif isinstance(step, DepthwiseStep) and not isinstance(step, inplace.InPlaceDepthwiseStep):
        plane = depthwise_plane_bytes(step.window)
        if 0 < plane <= 2 * LONGEST_DECODED_ROW:
            need = -(-plane // 2)
    elif isinstance(step, FullyConnectedStep) and packed and step.weights.bits == 4:
        if step.in_n % 2 == 0 and step.in_n <= LONGEST_DECODED_ROW:
            need = step.in_n if step.order is None else step.in_n + 512  # and a group's pair table, 256 words
    elif isinstance(step, FullyConnectedStep) and not packed and 4 <= step.in_n <= LONGEST_DECODED_ROW:
        need = step.in_n & ~3  # plain int8 rows: the inputs widened once to int16 pairs, the whole fours of them
    return -(-need // 4) * 4


def _conv_scratch_row(step: ConvStep) -> int:
    packed = step.weights.table is not None
    w = step.window
    k = w.k_h * w.k_w * w.in_c
    if step.pool is not None:
        # a fused max pool: the pool path decodes packed channels in blocks (two rows of k at least)
        if not packed or k > LONGEST_DECODED_ROW:
            return 0
        return max(k, -(-min(w.out_c * k, PIXEL_MAJOR_BLOCK_BYTES) // 2))
    need = 0
    one_by_one = (w.k_h, w.k_w, w.stride_h, w.stride_w, w.pad_h, w.pad_w) == (1, 1, 1, 1, 0, 0) and (
        w.out_h,
        w.out_w,
    ) == (w.in_h, w.in_w)
    if not one_by_one and k <= IM2COL_MAX_K:
        # the int16 im2col path: four pixels' windows and a patch, then the decoded rows (on the Cortex-M55 the
        # same room holds ec_mve_conv_im2col's four int8 windows, 4 * k rounded up to 16, and its decoded rows, k
        # apart: it fits wherever k >= 7, and the kernel checks)
        k4 = -(-k // 4) * 4
        rows = min(w.out_c * k4, max(IM2COL_BLOCK_BYTES, k4)) if packed or k != k4 else 0
        need = -(-(9 * k4 + rows) // 2)
    if k > LONGEST_DECODED_ROW or not packed:
        return need
    need = max(need, k)
    if one_by_one and step.weights.bits == 4 and w.in_c % 4 == 0:
        need = max(need, 2 * k)  # ec_conv_1x1 decodes 4-bit rows as int16 pairs (ec_row4_pairs): two rows of 2 * k
        if isinstance(step, inplace.InPlaceConvStep) and w.out_c <= w.in_c:
            need = max(need, -(-(4 * k + INPLACE_1X1_AHEAD_PIXELS * w.out_c) // 2))  # and the outputs held ahead
    if not one_by_one and k <= PATCH_BYTES:
        need = max(need, -(-min(w.out_c * k, PIXEL_MAJOR_BLOCK_BYTES) // 2))
    return need


# the pointwise + depthwise pairs the plan tries to fuse, largest pointwise output first (each try plans again)
FUSION_TRIES = 4


def _choose_fusions(steps, uses_of, sizes, input_name):
    """_choose_in_place's (steps, plan, uses, choices), with 1x1 + depthwise pairs fused (PointwiseDepthwiseStep)
    where that shrinks the arena: the pointwise output read by the depthwise alone, its input dying there;
    largest pointwise output first, each kept where the arena shrinks."""
    whole = uses_of(steps)
    best = _choose_in_place(steps, whole, uses_of, sizes, input_name)
    if not CONV_IN_PLACE:
        return best
    last = {u.name: u.last for u in whole}
    pairs = {}
    for s in range(len(steps) - 1):
        pw, dw = steps[s], steps[s + 1]
        shift = inplace.fused_shift(pw, dw)
        if shift is not None and last.get(pw.outputs[0]) == s + 1 and last.get(pw.inputs[0]) == s:
            pairs[s] = shift
    chosen: set[int] = set()
    saved: dict[int, int] = {}  # the arena before the fusion less the arena after
    for s in sorted(pairs, key=lambda s: -sizes[steps[s].outputs[0]])[:FUSION_TRIES]:
        new = []
        for i, step in enumerate(steps):
            if i - 1 in chosen | {s}:
                continue  # the depthwise of a fused pair
            if i in chosen | {s}:
                ring = f"{step.name}_{steps[i + 1].name}_ring"
                sizes[ring] = inplace.ring_bytes(steps[i + 1])
                step = inplace.fuse(step, steps[i + 1], ring, pairs[i])
            new.append(step)
        trial = _choose_in_place(tuple(new), uses_of(tuple(new)), uses_of, sizes, input_name)
        if trial[1].arena_bytes < best[1].arena_bytes:
            saved[s] = best[1].arena_bytes - trial[1].arena_bytes
            chosen.add(s)
            best = trial
    fused = tuple(
        dataclasses.replace(inplace.fusion_choice(steps[s], steps[s + 1]), saved_bytes=saved[s]) for s in sorted(chosen)
    )
    order = [step.name for step in best[0]]
    return (*best[:3], tuple(sorted(best[3] + fused, key=lambda c: order.index(c.step))))


def _choose_in_place(steps, whole, uses_of, sizes, input_name):
    """(steps, plan, uses, choices): the eligible convolutions (input dying there) made in place, all of them
    or those that shrink the arena or its bound one by one, whichever plan is smaller; then each undone
    again (smallest input first) where the arena does not grow without it."""
    plan = memory_plan.plan(whole, alignment=TENSOR_ALIGNMENT)
    if not CONV_IN_PLACE:
        return steps, plan, whole, ()
    last = {u.name: u.last for u in whole}
    eligible: dict[int, int] = {}  # step -> its window's bytes
    shifts: dict[int, int] = {}  # step -> the shift of its ShiftedConvStep (no window)
    for s, step in enumerate(steps):
        window, shift = inplace.window_bytes(step), inplace.shift_bytes(step)
        src = step.inputs[0] if step.inputs else None
        if src is None or last.get(src) != s:
            continue
        if window is not None and src != input_name:
            eligible[s] = window
        elif shift is not None:
            eligible[s], shifts[s] = 0, shift
    if not eligible:
        return steps, plan, whole, ()

    def variant(chosen) -> tuple[tuple[Step, ...], memory_plan.MemoryPlan, list]:
        new = list(steps)
        for s in chosen:
            if s in shifts:
                new[s] = inplace.shifted_step(steps[s], shifts[s])
                continue
            window = f"{steps[s].name}_window"
            sizes[window] = eligible[s]
            new[s] = inplace.in_place_step(steps[s], window)
        new = tuple(new)
        uses = uses_of(new)
        return new, memory_plan.plan(uses, alignment=TENSOR_ALIGNMENT), uses

    def score(v) -> tuple[int, int]:
        return v[1].arena_bytes, v[1].lower_bound

    # all in; and one by one, largest input first, each kept where the arena or its bound shrinks (an alias
    # chain through several steps is one unit of its largest size, so all in can be worse than some)
    chosen = set(eligible)
    best = variant(chosen)
    added: set[int] = set()
    current = (steps, plan, whole)
    for s in sorted(eligible, key=lambda s: -sizes[steps[s].inputs[0]]):
        trial = variant(added | {s})
        if score(trial) < score(current):
            added.add(s)
            current = trial
    if score(current) < score(best):
        chosen, best = added, current
    if best[1].arena_bytes >= plan.arena_bytes:
        return steps, plan, whole, ()
    for s in sorted(chosen, key=lambda s: sizes[steps[s].inputs[0]]):
        trial = variant(chosen - {s})
        if trial[1].arena_bytes <= best[1].arena_bytes:
            chosen.discard(s)
            best = trial
    choices = []
    for s in sorted(chosen):
        without = variant(chosen - {s})[1].arena_bytes
        saved = max(without - best[1].arena_bytes, 0)
        choice = inplace.choice_for(steps[s], None if s in shifts else eligible[s])
        choices.append(dataclasses.replace(choice, saved_bytes=saved))
    for s in set(eligible) - chosen - set(shifts):
        sizes.pop(f"{steps[s].name}_window", None)
    return best[0], best[1], best[2], tuple(choices)


def _edge(t: GraphTensor) -> Edge:
    q = t.quant
    return Edge(t.name, tuple(t.shape), t.dtype, q.scale if q else None, q.zero_point if q else None)


def _nbytes(t: GraphTensor) -> int:
    return t.size * np.dtype(t.dtype).itemsize
