import numpy as np
import pytest

from earthgen_cli.inference.tiling import TileGrid, axis_starts, axis_weights


@pytest.mark.parametrize("length,tile,overlap", [(1068, 128, 32), (300, 64, 16), (64, 64, 8),
                                                 (50, 64, 8), (1000, 512, 64), (129, 128, 0)])
def test_axis_weights_sum_to_exactly_one(length, tile, overlap):
    starts = axis_starts(length, tile, overlap)
    weights = axis_weights(length, tile, starts, overlap)
    total = np.zeros(length)
    for s, w in zip(starts, weights):
        assert np.all(w >= 0)
        total[s : s + len(w)] += w
    assert np.array_equal(total, np.ones(length))


def test_last_tile_is_anchored_to_the_edge():
    starts = axis_starts(1000, 512, 64)
    assert starts[0] == 0 and starts[-1] == 1000 - 512
    assert all(b - a <= 512 - 64 for a, b in zip(starts, starts[1:]))


def test_weights_are_smooth_and_flat_at_scene_edges():
    grid = TileGrid(300, 300, 128, 32)
    w = grid.row_weights()
    assert w[0][0] == 1.0 and w[-1][-1] == 1.0  # no ramp at the scene edge
    # the ramp across an overlap moves in steps no bigger than a smooth cosine would
    assert np.max(np.abs(np.diff(w[0]))) < 0.06


def test_2d_weights_sum_to_one_everywhere():
    grid = TileGrid(200, 330, 96, 24)
    total = np.zeros((200, 330))
    for r, y in enumerate(grid.row_starts):
        for c, x in enumerate(grid.col_starts):
            total[y : y + grid.tile_h, x : x + grid.tile_w] += grid.weight(r, c)
    assert np.array_equal(total, np.ones_like(total))


def test_stripes_partition_tile_columns_and_write_each_column_once():
    grid = TileGrid(100, 1000, 64, 16)
    stripes = grid.stripes(target_width=200, align=32)
    assert [c for s in stripes for c in s.tile_cols] == list(range(len(grid.col_starts)))
    assert stripes[0].x0 == 0 and stripes[-1].x_write == stripes[-1].x_end == 1000
    for a, b in zip(stripes, stripes[1:]):
        assert a.x_write == b.x0 and b.x0 % 32 == 0  # written once, on block boundaries
        assert a.x_end <= b.x_end and a.carry_width == a.x_end - b.x0 > 0
        first = grid.col_starts[b.tile_cols[0]]
        assert b.x0 <= first  # the stripe's tiles fit in its accumulator
        assert grid.col_starts[a.tile_cols[-1]] + 64 == a.x_end


def test_bad_overlap_is_rejected():
    with pytest.raises(ValueError):
        TileGrid(100, 100, 64, 32)
