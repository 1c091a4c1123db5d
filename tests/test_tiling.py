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


@pytest.mark.parametrize("length,tile,overlap,align", [(1098, 256, 64, 8), (50, 32, 8, 8), (37, 32, 12, 8),
                                                       (30, 64, 16, 8), (1, 16, 0, 16), (121, 48, 23, 16)])
def test_aligned_tiles_sit_on_the_grid_and_hang_past_the_edge_by_less_than_align(length, tile, overlap, align):
    grid = TileGrid(length, length, tile, overlap, align=align)
    starts, size = grid.row_starts, grid.tile_h
    padded = grid.padded_height
    assert padded % align == 0 and length <= padded < length + align
    assert size % align == 0 and all(s % align == 0 for s in starts)
    assert starts[0] == 0 and starts[-1] + size == padded  # anchored to the padded edge
    assert all(a < b <= a + size - overlap for a, b in zip(starts, starts[1:]))  # at least the overlap asked for
    total = np.zeros(padded)
    for s, w in zip(starts, grid.row_weights()):
        total[s : s + size] += w
    assert np.array_equal(total, np.ones(padded))


def test_coarser_grid_is_the_same_tiling():
    grid = TileGrid(61, 1098, 32, 15, align=8)
    lat = grid.coarser(4)
    assert (lat.height, lat.width, lat.tile_h, lat.tile_w) == (16, 276, 8, 8)
    assert lat.row_starts == [s // 4 for s in grid.row_starts]
    assert lat.col_starts == [s // 4 for s in grid.col_starts]


def test_off_grid_tile_is_rejected():
    with pytest.raises(ValueError):
        TileGrid(100, 100, 60, 8, align=8)
