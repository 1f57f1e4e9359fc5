"""Static memory planning: buffers live at the same step never share bytes, offsets are
aligned, the arena is never smaller than the peak, and disjoint lifetimes reuse memory.

Expected values are worked out by hand from the lifetimes and the placement rule
(decreasing size, lowest aligned free offset), never copied from the planner's output.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tosac.runtime.memory_plan import Buffer, MemoryPlan, liveness, peak_live_bytes, plan_memory


# ------------------------------------------------------------------ helpers
def _live_at(buffers: list[Buffer], step: int) -> list[Buffer]:
    return [b for b in buffers if b.first_step <= step <= b.last_step]


def _brute_peak(buffers: list[Buffer]) -> int:
    """Peak live bytes by checking every step (independent of the planner's sweep)."""
    if not buffers:
        return 0
    steps = range(min(b.first_step for b in buffers), max(b.last_step for b in buffers) + 1)
    return max(sum(b.nbytes for b in _live_at(buffers, s)) for s in steps)


def _conflicts(a: Buffer, b: Buffer, offsets: dict[str, int]) -> bool:
    """Both live at a common step and their (non-empty) address ranges intersect."""
    same_time = a.first_step <= b.last_step and b.first_step <= a.last_step
    oa, ob = offsets[a.name], offsets[b.name]
    same_bytes = a.nbytes > 0 and b.nbytes > 0 and oa < ob + b.nbytes and ob < oa + a.nbytes
    return same_time and same_bytes


@st.composite
def buffer_lists(draw, max_size: int = 5000, unique_sizes: bool = False) -> list[Buffer]:
    n = draw(st.integers(0, 25))
    sizes_st = st.integers(0, max_size)
    sizes = draw(st.lists(sizes_st, min_size=n, max_size=n, unique=unique_sizes))
    buffers = []
    for i, size in enumerate(sizes):
        first = draw(st.integers(0, 30))
        length = draw(st.integers(0, 12))
        buffers.append(Buffer(f"t{i}", size, first, first + length))
    return buffers


# ------------------------------------------------------------------ plan_memory properties
@settings(max_examples=300, deadline=None)
@given(buffer_lists(), st.sampled_from([1, 4, 16, 64]))
def test_random_plans_are_valid(buffers, alignment):
    plan = plan_memory(buffers, alignment)
    assert set(plan.offsets) == {b.name for b in buffers}
    for i, a in enumerate(buffers):
        assert plan.offsets[a.name] % alignment == 0 and plan.offsets[a.name] >= 0
        assert plan.offsets[a.name] + a.nbytes <= plan.arena_bytes
        for b in buffers[i + 1:]:
            assert not _conflicts(a, b, plan.offsets), (a, b, plan.offsets)
    assert plan.peak_bytes == _brute_peak(buffers)
    assert plan.arena_bytes >= plan.peak_bytes
    # The arena is exactly as large as its highest buffer end.
    assert plan.arena_bytes == max((plan.offsets[b.name] + b.nbytes for b in buffers), default=0)


@settings(max_examples=200, deadline=None)
@given(buffer_lists(unique_sizes=True), st.sampled_from([1, 8, 64]))
def test_each_buffer_gets_the_lowest_free_aligned_offset(buffers, alignment):
    """With distinct sizes the placement order is fixed (largest first), so for every buffer each
    lower aligned offset must collide with some larger buffer live at the same time."""
    plan = plan_memory(buffers, alignment)
    for buf in buffers:
        if buf.nbytes == 0:
            assert plan.offsets[buf.name] == 0
            continue
        larger = [b for b in buffers if b.nbytes > buf.nbytes]
        for lower in range(0, plan.offsets[buf.name], alignment):
            trial = {**plan.offsets, buf.name: lower}
            assert any(_conflicts(buf, other, trial) for other in larger), (buf, lower)


@settings(max_examples=100, deadline=None)
@given(buffer_lists(), st.randoms(use_true_random=False))
def test_plan_does_not_depend_on_buffer_order(buffers, rnd):
    shuffled = list(buffers)
    rnd.shuffle(shuffled)
    assert plan_memory(buffers).offsets == plan_memory(shuffled).offsets


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=20))
def test_all_overlapping_lifetimes_need_the_sum(sizes):
    # Every buffer is live at step 5, so no two may share a byte.
    buffers = [Buffer(f"t{i}", s, 5 - i % 3, 5 + i % 4) for i, s in enumerate(sizes)]
    assert plan_memory(buffers, alignment=1).arena_bytes == sum(sizes)
    # Sizes already multiples of the alignment: no padding either.
    aligned = [Buffer(b.name, b.nbytes * 64, b.first_step, b.last_step) for b in buffers]
    plan = plan_memory(aligned, alignment=64)
    assert plan.arena_bytes == plan.peak_bytes == 64 * sum(sizes)


def test_chain_reuses_memory():
    # x -> a -> b -> c -> d -> y; x and y are graph input/output.
    steps = [(["x"], ["a"]), (["a"], ["b"]), (["b"], ["c"]), (["c"], ["d"]), (["d"], ["y"])]
    sizes = dict.fromkeys("abcd", 100)
    buffers = liveness(steps, sizes, external={"x", "y"})
    # a: steps 0-1, b: 1-2, c: 2-3, d: 3-4; only neighbours overlap.
    assert [(b.name, b.first_step, b.last_step) for b in buffers] == \
        [("a", 0, 1), ("b", 1, 2), ("c", 2, 3), ("d", 3, 4)]
    plan = plan_memory(buffers, alignment=64)
    assert plan.arena_bytes < sum(sizes.values())
    assert plan.peak_bytes == 200
    # Two slots ping-pong: a and c at 0, b and d at align_up(100, 64) = 128.
    assert plan.offsets == {"a": 0, "b": 128, "c": 0, "d": 128}
    assert plan.arena_bytes == 128 + 100


def test_larger_buffers_are_placed_first():
    # big lives 0-2, small 0-0, late 1-1: small and late do not overlap in time.
    plan = plan_memory([Buffer("small", 10, 0, 0), Buffer("late", 30, 1, 1), Buffer("big", 50, 0, 2)],
                       alignment=16)
    # big at 0 (ends 50 -> next aligned 64); late at 64; small also at 64 (late is not live at step 0).
    assert plan.offsets == {"small": 64, "late": 64, "big": 0}
    assert plan.arena_bytes == 64 + 30 and plan.peak_bytes == 80


def test_slot_of_a_finished_buffer_is_reused_below_live_ones():
    # Equal sizes are placed by first step, then last step: hole (0-0), then a, then b (0-9).
    # hole -> 0; a overlaps hole at step 0 -> 64; b overlaps both -> 128. c (steps 5-6, placed last
    # as the smallest) overlaps a and b but not hole, so the lowest free offset is hole's, 0.
    buffers = [Buffer("a", 64, 0, 9), Buffer("hole", 64, 0, 0), Buffer("b", 64, 0, 9), Buffer("c", 40, 5, 6)]
    plan = plan_memory(buffers, alignment=64)
    assert plan.offsets == {"hole": 0, "a": 64, "b": 128, "c": 0}
    assert plan.arena_bytes == 192


def test_zero_size_buffers_take_no_space():
    plan = plan_memory([Buffer("empty", 0, 0, 5), Buffer("x", 100, 0, 5)], alignment=64)
    assert plan.offsets == {"empty": 0, "x": 0}
    assert plan.arena_bytes == 100 and plan.peak_bytes == 100


def test_empty_plan():
    plan = plan_memory([])
    assert plan == MemoryPlan({}, 0, 0)
    assert plan.describe() == "arena 0 B for 0 buffers, peak live 0 B"


def test_describe_is_one_line_with_units():
    plan = MemoryPlan({f"t{i}": 0 for i in range(14)}, arena_bytes=1258291, peak_bytes=1153434)
    # 1258291 / 2**20 = 1.2000, 1153434 / 2**20 = 1.1000
    assert plan.describe() == "arena 1.2 MiB for 14 buffers, peak live 1.1 MiB"
    assert MemoryPlan({"a": 0}, 2048, 1536).describe() == "arena 2.0 KiB for 1 buffer, peak live 1.5 KiB"


@pytest.mark.parametrize("buffers, words", [
    ([Buffer("a", 1, 0, 0), Buffer("a", 1, 1, 1)], "twice"),
    ([Buffer("a", -1, 0, 0)], "negative"),
    ([Buffer("a", 1, 3, 2)], "before it starts"),
])
def test_plan_rejects_inconsistent_buffers(buffers, words):
    with pytest.raises(ValueError, match=words):
        plan_memory(buffers)


def test_plan_rejects_bad_alignment():
    with pytest.raises(ValueError, match="alignment"):
        plan_memory([Buffer("a", 1, 0, 0)], alignment=0)


def test_peak_counts_buffers_ending_and_starting_at_the_same_step():
    # a ends at step 2 and b starts at step 2: both are live at step 2.
    assert peak_live_bytes([Buffer("a", 10, 0, 2), Buffer("b", 20, 2, 4)]) == 30
    # c ends at step 1, d starts at step 2: never live together.
    assert peak_live_bytes([Buffer("c", 10, 0, 1), Buffer("d", 20, 2, 4)]) == 20


# ------------------------------------------------------------------ liveness
def test_liveness_last_read_decides_the_end():
    steps = [(["in"], ["a"]), (["a"], ["b"]), (["b"], ["c"]), (["a", "c"], ["out"])]
    buffers = {b.name: b for b in liveness(steps, {"a": 4, "b": 8, "c": 16}, {"in", "out"})}
    assert buffers["a"] == Buffer("a", 4, 0, 3)       # read again at step 3
    assert buffers["b"] == Buffer("b", 8, 1, 2)
    assert buffers["c"] == Buffer("c", 16, 2, 3)
    assert set(buffers) == {"a", "b", "c"}             # externals get no buffer


def test_written_but_never_read_lives_only_at_its_step():
    steps = [(["in"], ["dead", "a"]), (["a"], ["out"])]
    buffers = {b.name: b for b in liveness(steps, {"dead": 3, "a": 5}, {"in", "out"})}
    assert buffers["dead"] == Buffer("dead", 3, 0, 0)
    assert buffers["a"] == Buffer("a", 5, 0, 1)


def test_kernel_inputs_and_outputs_never_share_memory():
    # b is written at the step that last reads a: both live at step 1.
    buffers = liveness([(["x"], ["a"]), (["a"], ["b"]), (["b"], ["y"])], {"a": 64, "b": 64}, {"x", "y"})
    plan = plan_memory(buffers)
    assert plan.offsets["a"] != plan.offsets["b"]


def test_constants_and_graph_io_are_external():
    steps = [(["x", "w"], ["a"]), (["a", "w"], ["y"])]
    assert liveness(steps, {"a": 10}, {"x", "w", "y"}) == [Buffer("a", 10, 0, 1)]


def test_liveness_of_no_steps():
    assert liveness([], {}, set()) == []


def test_buffers_come_in_order_of_writing():
    steps = [(["x"], ["z"]), (["z"], ["m"]), (["m"], ["a"]), (["a", "z"], ["y"])]
    assert [b.name for b in liveness(steps, dict.fromkeys("zma", 1), {"x", "y"})] == ["z", "m", "a"]


@pytest.mark.parametrize("steps, sizes, words", [
    ([(["a"], ["b"])], {"a": 1, "b": 1}, "before any step writes"),       # a is not external
    ([(["x"], ["a"]), (["a"], ["a"])], {"a": 1}, "already written"),
    ([(["x"], ["a"])], {}, "no size"),
    ([(["x"], ["a"])], {"a": -4}, "negative"),
])
def test_liveness_rejects_inconsistent_schedules(steps, sizes, words):
    with pytest.raises(ValueError, match=words):
        liveness(steps, sizes, {"x"})
