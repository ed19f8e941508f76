"""Long inputs are split into overlapping windows: nothing dropped, spans up to the overlap whole."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard.windows import split_windows


def test_short_input_is_one_window():
    assert split_windows([1, 2, 3], size=5, overlap=2) == [[1, 2, 3]]
    assert split_windows(list(range(5)), size=5, overlap=2) == [list(range(5))]
    assert split_windows([], size=5, overlap=2) == [[]]


def test_long_input_overlaps_and_ends_aligned():
    windows = split_windows(list(range(10)), size=4, overlap=1)
    assert windows == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    tail = split_windows(list(range(11)), size=4, overlap=1)
    assert tail[-1] == [7, 8, 9, 10]  # aligned to the end, not a 2-token tail


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        split_windows([1], size=0, overlap=0)
    with pytest.raises(ValueError):
        split_windows([1], size=4, overlap=4)


@given(
    n=st.integers(min_value=0, max_value=400),
    size=st.integers(min_value=2, max_value=64),
    data=st.data(),
)
def test_every_span_up_to_overlap_plus_one_lies_in_a_window(n, size, data):
    overlap = data.draw(st.integers(min_value=0, max_value=size - 1))
    ids = list(range(n))
    windows = split_windows(ids, size, overlap)
    assert all(len(w) <= size for w in windows)
    assert sorted({t for w in windows for t in w}) == ids  # nothing dropped
    span = min(overlap + 1, n)
    for start in range(n - span + 1 if n else 0):
        wanted = ids[start : start + span]
        assert any(w[0] <= wanted[0] and wanted[-1] <= w[-1] for w in windows if w)
