"""The unified model: shapes, presets (paper size counted on the meta device), codecs, routing."""

from __future__ import annotations

import pytest
import torch

from earthgen_cli.models.codecs import KLCodec, PixelCodec
from earthgen_cli.models.config import CodecConfig, CodecKind, model_config
from earthgen_cli.models.earthgen import EarthGenModel, count_parameters

ALL = ("rgb", "sar", "nir", "pan", "ms", "osm")
BANDS = dict(rgb=3, sar=2, nir=1, pan=1, ms=6, osm=3)


def tiny(**kw) -> EarthGenModel:
    torch.manual_seed(0)
    return EarthGenModel(model_config("tiny", ("rgb", "sar", "nir"), dict(rgb=3, sar=2, nir=1), **kw))


def test_paper_preset_is_about_600m_parameters_and_gpu_base_shapes():
    with torch.device("meta"):
        paper = EarthGenModel(model_config("paper", ALL, BANDS))
        base = EarthGenModel(model_config("gpu-base", ALL, BANDS))
    flow = sum(p.numel() for p in paper.flow_parameters())
    assert 550e6 < flow < 700e6, flow  # MetaEarth-MM: ~600M (20 scene + 4 generator blocks, hidden 1024)
    assert len(paper.scene.blocks) == 20 and len(paper.generator.blocks) == 4
    assert paper.scene.patch["rgb"].weight.shape == (1024, 4, 2, 2)
    assert len(paper.generator.blocks[0].ffn) == 6  # one FFN route per modality
    assert base.scene.patch["ms"].weight.shape == (768, 4, 2, 2) and len(base.scene.blocks) == 12
    assert paper.cfg.tile_multiple == 16 and base.cfg.tile_multiple == 16
    assert 100e6 < sum(p.numel() for p in base.flow_parameters()) < flow


def test_forward_shapes_and_zero_init():
    m = tiny()
    z = [torch.randn(3, 12, 8, 8), torch.randn(3, 8, 8, 8)]
    out = m(z, ["rgb", "sar"], torch.rand(3, 2), gsd=torch.full((3,), 10.0))
    assert [p.shape for p in out.pred] == [(3, 12, 8, 8), (3, 8, 8, 8)]
    assert [lv.shape for lv in out.logvar] == [(3, 1, 8, 8), (3, 1, 8, 8)]
    assert out.scene.shape == (3, 2, 64, 32)
    assert all(p.abs().max() == 0 for p in out.pred)  # adaLN-Zero / zero heads: training starts at 0
    one = m([z[1]], ["sar"], torch.rand(3, 1))  # a single slot (unconditional generation) works too
    assert one.pred[0].shape == (3, 8, 8, 8)


def test_samples_are_independent_and_routes_are_per_modality():
    m = tiny()
    for p in m.parameters():  # leave the zero init so outputs depend on the inputs
        torch.nn.init.normal_(p, std=0.05)
    z = [torch.randn(4, 12, 8, 8), torch.randn(4, 4, 8, 8)]
    t = torch.rand(4, 2)
    full = m(z, ["rgb", "nir"], t, gsd=torch.full((4,), 10.0))
    part = m([x[:2] for x in z], ["rgb", "nir"], t[:2], gsd=torch.full((2,), 10.0))
    torch.testing.assert_close(full.pred[0][:2], part.pred[0], rtol=1e-4, atol=1e-5)
    full.pred[0].sum().backward()
    ffn = m.generator.blocks[0].ffn
    assert ffn[0][0].weight.grad.abs().sum() > 0  # rgb's route
    assert ffn[1][0].weight.grad is None  # sar's route: not in this batch
    # Dropping the GSD changes the prediction (it is a real condition).
    dropped = m(z, ["rgb", "nir"], t, gsd=torch.full((4,), 10.0), drop=torch.ones(4, dtype=torch.bool))
    assert not torch.allclose(dropped.pred[0], full.pred[0])


def test_bad_slots_raise():
    m = tiny()
    with pytest.raises(ValueError, match="not one of"):
        m([torch.randn(1, 4, 8, 8)], ["pan"], torch.rand(1, 1))
    with pytest.raises(ValueError, match="does not match"):
        m([torch.randn(1, 5, 8, 8)], ["rgb"], torch.rand(1, 1))


def test_pixel_codec_is_exact_and_kl_codec_shapes():
    x = torch.randn(2, 3, 16, 16)
    pc = PixelCodec(3, 2)
    assert pc.encode(x).shape == (2, 12, 8, 8)
    assert torch.equal(pc.decode(pc.encode(x)), x)
    kl = KLCodec(2, CodecConfig(CodecKind.kl, 2, 4, (32, 32)))
    kl.set_latent_stats([0.1] * 4, [2.0] * 4)
    z = kl.encode(torch.randn(1, 2, 16, 16))
    assert z.shape == (1, 4, 8, 8) and kl.decode(z).shape == (1, 2, 16, 16)
    g = torch.Generator().manual_seed(0)
    assert not torch.equal(kl.encode(x[:1, :2], sample=True, generator=g), kl.encode(x[:1, :2]))


def test_config_rejects_inconsistent_sizes():
    with pytest.raises(ValueError, match="heads"):
        model_config("tiny", ("rgb",), {"rgb": 3}, hidden=30)
    with pytest.raises(ValueError, match="bands"):
        model_config("tiny", ("rgb", "sar"), {"rgb": 3})
    with pytest.raises(ValueError, match="factor"):
        CodecConfig(CodecKind.kl, 4, 4, (32, 32))
    assert count_parameters(tiny()) < 300_000


def test_aligned_skip_grows_a_model_exactly_and_carries_only_a_present_source(tmp_path):
    """model.aligned_skip on top of a trained model: the zero-initialised skip leaves every
    prediction as it was (fine-tuning starts from the same model), a dropped source (t = 1) adds
    nothing through it, and a clean one maps its latent straight to the target's prediction."""
    from safetensors.torch import save_file

    from earthgen_cli import checkpoint as ck

    base = tiny()
    for p in base.parameters():
        torch.nn.init.normal_(p, std=0.05)
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, tmp_path / "w.safetensors")
    grown = tiny(aligned_skip=True)
    with pytest.raises(Exception, match="lacks tensor generator.skip"):
        ck.load_weights(grown, tmp_path / "w.safetensors")
    ck.load_weights(grown, tmp_path / "w.safetensors", new="generator.skip.")
    z = [torch.randn(2, 12, 8, 8), torch.randn(2, 4, 8, 8)]
    t = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # sample 0: clean rgb source; sample 1: source dropped
    a, b = base(z, ["rgb", "nir"], t), grown(z, ["rgb", "nir"], t)
    assert all(torch.equal(x, y) for x, y in zip(a.pred, b.pred))
    skip = grown.generator.skip["rgb_to_nir"]
    torch.nn.init.normal_(skip.weight, std=0.1)
    c = grown(z, ["rgb", "nir"], t)
    direct = torch.nn.functional.conv2d(z[0], skip.weight, skip.bias)
    torch.testing.assert_close(c.pred[1][0] - a.pred[1][0], direct[0], rtol=1e-4, atol=1e-5)
    assert torch.equal(c.pred[1][1], a.pred[1][1])  # the dropped source contributes exactly nothing


def test_pixel_norm_keeps_the_pixel_path_alive_where_the_plain_trunk_dies():
    """v7-v9's pixel path died: its last convolution's outputs sat near -53, where SiLU and its
    gradient vanish, so the head got no signal. Put both trunks in that state: the plain one adds
    nothing and passes no gradient to its head; with model.pixel_norm the path still adds to the
    prediction and its head still learns."""
    z = [torch.randn(2, 12, 8, 8), torch.randn(2, 4, 8, 8)]
    t = torch.tensor([[0.0, 1.0], [0.0, 1.0]])  # a clean rgb source, the nir target at pure noise
    grads = {}
    for norm in (False, True):
        model = tiny(pixel_path=8, pixel_norm=norm)
        path = model.generator.pixel
        for h in path.head.values():
            torch.nn.init.normal_(h.weight, std=0.2)
        last = [m for m in path.trunk if isinstance(m, torch.nn.Conv2d)][-1]
        with torch.no_grad():
            last.bias.fill_(-53.0)
        feats = path.features(z, ["rgb", "nir"], t)
        share = path.to_slot(feats, ["rgb", "nir"], 1)
        share.square().mean().backward()
        grads[norm] = (share.abs().max().item(), path.head["nir"].weight.grad.abs().max().item())
    assert grads[False][0] < 1e-12 and grads[False][1] < 1e-12, grads
    assert grads[True][0] > 1e-2 and grads[True][1] > 1e-3, grads


def test_pixel_path_remade_with_pixel_norm_starts_as_an_exact_no_op(tmp_path):
    """flow.init_from with model.pixel_norm on a checkpoint whose pixel path has none: the file's path
    is left out (load_weights `fresh`), every other weight comes through, and the new path (zero head)
    adds exactly nothing until it learns."""
    from safetensors.torch import save_file

    from earthgen_cli import checkpoint as ck

    old = tiny(pixel_path=8)
    for p in old.parameters():
        torch.nn.init.normal_(p, std=0.05)
    save_file({k: v.contiguous() for k, v in old.state_dict().items()}, tmp_path / "w.safetensors")
    remade = tiny(pixel_path=8, pixel_norm=True)
    with pytest.raises(Exception, match="does not match config.json"):
        ck.load_weights(remade, tmp_path / "w.safetensors")
    ck.load_weights(remade, tmp_path / "w.safetensors", fresh="generator.pixel.")
    for k, v in old.state_dict().items():
        if not k.startswith("generator.pixel."):
            assert torch.equal(remade.state_dict()[k], v), k
    for h in old.generator.pixel.head.values():  # the old path's contribution taken out
        torch.nn.init.zeros_(h.weight)
    z = [torch.randn(2, 12, 8, 8), torch.randn(2, 4, 8, 8)]
    t = torch.tensor([[0.0, 1.0], [0.0, 0.5]])
    with torch.no_grad():
        a, b = old(z, ["rgb", "nir"], t), remade(z, ["rgb", "nir"], t)
    assert all(torch.equal(x, y) for x, y in zip(a.pred, b.pred))


def test_pixel_pairs_give_each_direction_its_own_path():
    """model.pixel_pairs: a stem, trunk and head per (source, target). It starts as an exact no-op,
    a dropped source adds nothing, and training one direction's path (here: its head) changes that
    direction's prediction only: rgb->nir moves, nir->rgb and sar->nir stay exactly as they were."""
    z = {"rgb": torch.randn(2, 12, 8, 8), "nir": torch.randn(2, 4, 8, 8), "sar": torch.randn(2, 8, 8, 8)}
    t = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # sample 0: a clean source; sample 1: source dropped
    base, pairs = tiny(pixel_path=8, pixel_norm=True), tiny(pixel_path=8, pixel_norm=True, pixel_pairs=True)
    shared = {k: v for k, v in base.state_dict().items() if not k.startswith("generator.pixel.")}
    pairs.load_state_dict({**pairs.state_dict(), **shared})
    assert sorted(pairs.generator.pixel.head) == sorted(f"{a}_to_{b}" for a in ("rgb", "sar", "nir")
                                                        for b in ("rgb", "sar", "nir") if a != b)
    directions = [("rgb", "nir"), ("nir", "rgb"), ("sar", "nir")]
    with torch.no_grad():
        before = {d: pairs([z[d[0]], z[d[1]]], list(d), t).pred[1] for d in directions}
        for d in directions:  # zero heads: exactly the model without the path
            assert torch.equal(before[d], base([z[d[0]], z[d[1]]], list(d), t).pred[1])
        torch.nn.init.normal_(pairs.generator.pixel.head["rgb_to_nir"].weight, std=0.2)
        after = {d: pairs([z[d[0]], z[d[1]]], list(d), t).pred[1] for d in directions}
    assert (after[("rgb", "nir")][0] - before[("rgb", "nir")][0]).abs().max() > 1e-3
    assert torch.equal(after[("rgb", "nir")][1], before[("rgb", "nir")][1])  # the dropped source adds nothing
    assert torch.equal(after[("nir", "rgb")], before[("nir", "rgb")])
    assert torch.equal(after[("sar", "nir")], before[("sar", "nir")])


def test_pixel_path_grows_a_model_exactly_and_works_at_pixel_resolution(tmp_path):
    """model.pixel_path on top of a trained model starts as an exact no-op, a dropped source adds
    nothing through it, and what it adds is per pixel: a source changed in one pixel changes the
    target's prediction only within the trunk's 31-pixel reach, and at pixel (not token) grain."""
    from safetensors.torch import save_file

    from earthgen_cli import checkpoint as ck

    base = tiny()
    for p in base.parameters():
        torch.nn.init.normal_(p, std=0.05)
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, tmp_path / "w.safetensors")
    grown = tiny(pixel_path=8)
    with pytest.raises(Exception, match="lacks tensor generator.pixel"):
        ck.load_weights(grown, tmp_path / "w.safetensors")
    ck.load_weights(grown, tmp_path / "w.safetensors", new=("generator.skip.", "generator.pixel."))
    z = [torch.randn(2, 12, 8, 8), torch.randn(2, 4, 8, 8)]
    t = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # sample 0: clean rgb source; sample 1: source dropped
    a, b = base(z, ["rgb", "nir"], t), grown(z, ["rgb", "nir"], t)
    assert all(torch.equal(x, y) for x, y in zip(a.pred, b.pred))
    for p in grown.generator.pixel.parameters():
        torch.nn.init.normal_(p, std=0.2)
    c = grown(z, ["rgb", "nir"], t)
    assert torch.equal(c.pred[1][1], a.pred[1][1])  # the dropped source contributes exactly nothing
    added = torch.nn.functional.pixel_shuffle(c.pred[1][:1] - a.pred[1][:1], 2)[0, 0]  # (16, 16) pixels
    assert added.abs().min() > 0
    # per-pixel grain: the added map is not constant within the codec's 2x2 cells
    assert (added[0::2, 0::2] - added[1::2, 1::2]).abs().mean() > 0.01 * added.abs().mean()


def test_pixel_sees_pred_widens_a_paired_path_exactly_and_reads_the_prediction(tmp_path):
    """model.pixel_sees_pred: each pair's stem reads the target's prediction beside the source.
    Widened from a pixel_pairs checkpoint (zero weights for the new channels) it computes exactly
    what that checkpoint did; once those weights move, the rgb->nir share depends on the
    prediction, and a dropped source still adds nothing."""
    from safetensors.torch import save_file

    from earthgen_cli import checkpoint as ck

    with pytest.raises(ValueError, match="needs model.pixel_pairs"):
        tiny(pixel_path=8, pixel_sees_pred=True)
    pairs = tiny(pixel_path=8, pixel_norm=True, pixel_pairs=True)
    for p in pairs.parameters():
        torch.nn.init.normal_(p, std=0.05)
    save_file({k: v.contiguous() for k, v in pairs.state_dict().items()}, tmp_path / "w.safetensors")
    sees = tiny(pixel_path=8, pixel_norm=True, pixel_pairs=True, pixel_sees_pred=True)
    with pytest.raises(Exception, match="has shape"):
        ck.load_weights(sees, tmp_path / "w.safetensors")
    ck.load_weights(sees, tmp_path / "w.safetensors", widen="generator.pixel.stem.")
    stem = sees.generator.pixel.stem["rgb_to_nir"].weight
    assert stem.shape[1] == 3 + 1 and torch.equal(stem[:, 3:], torch.zeros_like(stem[:, 3:]))
    z = [torch.randn(2, 12, 8, 8), torch.randn(2, 4, 8, 8)]
    t = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # sample 0: a clean source; sample 1: source dropped
    with torch.no_grad():
        before = sees(z, ["rgb", "nir"], t).pred[1]
        assert torch.allclose(before, pairs(z, ["rgb", "nir"], t).pred[1], rtol=0, atol=1e-6)
        torch.nn.init.normal_(stem[:, 3:], std=0.5)
        after = sees(z, ["rgb", "nir"], t).pred[1]
    assert (after[0] - before[0]).abs().max() > 1e-3
    assert torch.equal(after[1], before[1])


def test_per_token_times_match_per_slot_times_and_reach_every_path():
    """t of shape (B, K, hp, wp) (masked-slot inpainting) with every token of a slot at its slot's
    time gives exactly the per-slot model; a token's own time changes that token's prediction and,
    through attention, its neighbours', and the aligned, skip and pixel paths take it per token."""
    m = tiny(aligned_skip=True, pixel_path=8, pixel_pairs=True, pixel_by_time=True, pixel_sees_pred=True,
             context_path=8)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.05)
    m.eval()
    z = [torch.randn(2, 12, 8, 8), torch.randn(2, 4, 8, 8)]
    t = torch.tensor([[0.0, 0.7], [0.4, 1.0]])
    hp = 8 // m.cfg.patch
    slot = m(z, ["rgb", "nir"], t)
    token = m(z, ["rgb", "nir"], t[:, :, None, None].repeat(1, 1, hp, hp))
    for a, b in zip(slot.pred, token.pred):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    tt = t[:, :, None, None].repeat(1, 1, hp, hp)
    tt[:, 1, : hp // 2] = 0.0  # the top half of the nir slot known (clean)
    mixed = m(z, ["rgb", "nir"], tt)
    diff = (mixed.pred[1] - slot.pred[1]).abs().mean(1)  # (B, h, w)
    assert diff[:, : 8 // 2].mean() > 0 and diff[:, 8 // 2 :].mean() > 0  # known and generated rows both move
    with pytest.raises(ValueError, match="token grid"):
        m(z, ["rgb", "nir"], torch.rand(2, 2, hp + 1, hp))


def test_context_path_acts_only_beside_known_tokens():
    """model.context_path adds nothing to per-slot times (translation, joint generation), nor to a
    slot without known tokens, nor on the known cells themselves; beside known tokens it corrects
    the generated ones. Zero-initialised, it starts as an exact no-op."""
    base = tiny()
    for p in base.parameters():
        torch.nn.init.normal_(p, std=0.05)
    grown = tiny(context_path=8)
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("generator.context.") for k in missing)
    base.eval(), grown.eval()
    z = [torch.randn(2, 12, 8, 8)]
    tt = torch.full((2, 1, 8, 8), 0.8)
    tt[0, 0, :4] = 0.0  # sample 0: top half known; sample 1: nothing known
    torch.testing.assert_close(grown(z, ["rgb"], tt).pred[0], base(z, ["rgb"], tt).pred[0], rtol=0, atol=0)
    for p in grown.generator.context.parameters():
        torch.nn.init.normal_(p, std=0.05)
    t = torch.full((2, 1), 0.8)
    torch.testing.assert_close(grown(z, ["rgb"], t).pred[0], base(z, ["rgb"], t).pred[0], rtol=0, atol=0)
    diff = (grown(z, ["rgb"], tt).pred[0] - base(z, ["rgb"], tt).pred[0]).abs().amax(1)  # (B, h, w)
    assert diff[0, 4:].min() > 0 and diff[0, :4].max() == 0 and diff[1].max() == 0


def test_harmonic_fill_solves_laplace_from_the_known_cells():
    """harmonic_fill keeps the known cells, reproduces any linear surface across a hole exactly (it
    is harmonic: to 0.1 % of its range across a small hole, 2.5 % across one that covers 3/4 of
    the grid, where plain Jacobi sweeps would still be near the starting level), and leaves a
    near-zero Laplacian in the hole on noise."""
    from earthgen_cli.models.earthgen import harmonic_fill

    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(33.0), indexing="ij")
    ramp = torch.stack([3 * xx - 2 * yy + 5, -xx + 0.5 * yy])[None]  # (1, 2, 40, 33)
    for hole, tol in (((slice(5, 11), slice(6, 12)), 1e-3), ((slice(2, 38), slice(3, 30)), 2.5e-2)):
        known = torch.ones(1, 1, 40, 33)
        known[..., hole[0], hole[1]] = 0
        filled = harmonic_fill(ramp * known + 100 * (1 - known), known)  # what the hole held is ignored
        torch.testing.assert_close(filled, ramp, rtol=0, atol=tol * ramp.abs().max().item())
    z = torch.randn(2, 3, 24, 24)
    known = (torch.rand(2, 1, 24, 24) > 0.7).float()
    known[1] = 0  # nothing known: zeros
    f = harmonic_fill(z, known)
    assert torch.equal(f[0][known[0].expand(3, -1, -1) > 0], z[0][known[0].expand(3, -1, -1) > 0])
    assert torch.equal(f[1], torch.zeros_like(f[1]))
    p = torch.nn.functional.pad(f[:1], (1, 1, 1, 1), mode="replicate")
    lap = (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]) / 4 - f[:1]
    assert (lap * (1 - known[:1])).abs().max() < 0.05 * z.abs().max()


def test_coherence_fill_carries_lines_across_a_hole():
    """coherence_fill (Bornemann-Marz coherence transport) keeps the known cells, continues a line
    that crosses the hole, vertical or diagonal, at most of its contrast where the harmonic fill
    fades it (0.82 and 0.56 against 0.20 and 0.08 when written), leaves the rest of the hole at the
    background, fills a smooth ramp with each band along its own gradient (to 2 % of its range
    where the gradient is oblique to the hole's sides; one along a side comes out terraced, 4 % RMS,
    still far from a flat fill), and gives 0 to a sample with no known cell (as harmonic_fill)."""
    from earthgen_cli.models.coherence import coherence_fill
    from earthgen_cli.models.earthgen import harmonic_fill

    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    known = torch.ones(1, 1, 48, 48)
    known[..., 16:32, 16:32] = 0
    hole = known[0, 0] == 0
    for away in ((xx - 23.5).abs(), (yy - xx).abs()):  # each pixel's distance from the line (x, y) axes
        line = away <= 1
        z = line.float()[None, None]
        filled = coherence_fill(z * known + 5 * (1 - known), known)  # what the hole held is ignored
        assert torch.equal(filled[known > 0], z[known > 0])
        on, off = filled[0, 0][line & hole], filled[0, 0][(away >= 4) & hole]
        smooth = harmonic_fill(z * known, known)[0, 0][line & hole]
        assert on.mean() > 0.5 and off.abs().max() < 0.05 and smooth.mean() < 0.25, (on.mean(), smooth.mean())
    ramp = torch.stack([3 * xx - 2 * yy + 5, -xx + 0.5 * yy, 2 * yy])[None]  # three gradient directions
    k = torch.ones(1, 1, 48, 48)
    k[..., 10:30, 12:36] = 0
    err = (coherence_fill(ramp * k, k) - ramp)[0][:, k[0, 0] == 0]  # (3, hole pixels)
    span = ramp.flatten(2).amax(2)[0] - ramp.flatten(2).amin(2)[0]
    assert (err[:2].abs().amax(1) < 0.03 * span[:2]).all(), err.abs().amax(1) / span
    assert (err.square().mean(1).sqrt() < 0.05 * span).all(), err.square().mean(1).sqrt() / span
    assert torch.equal(coherence_fill(torch.randn(2, 3, 8, 8), torch.zeros(2, 1, 8, 8)), torch.zeros(2, 3, 8, 8))


def test_guided_fill_carries_an_explaining_guide_and_ignores_noise():
    """guided_fill: a guide the target is an affine map of fills the hole exactly, whichever the
    fill (harmonic, coherence or blend); a guide of unrelated noise (or none: zeros) leaves about
    the harmonic fill; known cells stay z."""
    from earthgen_cli.models.earthgen import guided_fill, harmonic_fill

    torch.manual_seed(1)
    g = torch.nn.functional.avg_pool2d(torch.randn(3, 2, 34, 34), 3, 1)  # smooth guides, 32x32
    z = torch.stack([g[:, 0] - 2 * g[:, 1] + 0.3, 3 * g[:, 1], -g[:, 0]], 1)
    known = torch.ones(3, 1, 32, 32)
    known[..., 8:24, 10:26] = 0
    for method in ("harmonic", "coherence", "blend"):
        torch.testing.assert_close(guided_fill(z, known, g, method=method), z, rtol=0, atol=1e-3)
    plain = harmonic_fill(z, known)
    assert torch.equal(guided_fill(z, known, torch.zeros_like(g)), plain)
    noisy = guided_fill(z, known, torch.randn(3, 2, 32, 32))
    assert (noisy - plain).abs().max() < 0.05 * (z - plain).abs().max()
    assert torch.equal(noisy[known.expand_as(z) > 0], z[known.expand_as(z) > 0])


def test_context_fill_starts_at_the_harmonic_fill():
    """model.context_fill: grown on a model, the one-call (t=1) clean-latent estimate of a hole is
    the harmonic fill of the known cells at pixel resolution (pixel codec), whatever the rest of
    the network predicts; known cells and per-slot times are untouched. It needs an x0 target."""
    from earthgen_cli.models.earthgen import harmonic_fill

    m = tiny(target="x0", context_path=8, context_fill=True)
    for name, p in m.named_parameters():
        if not name.startswith("generator.context."):
            torch.nn.init.normal_(p, std=0.05)
    m.eval()
    z = torch.randn(2, 12, 8, 8)
    tt = torch.zeros(2, 1, 8, 8)
    tt[:, :, 2:6, 3:7] = 1.0  # a hole of 4x4 cells, noise in it
    base = tiny(target="x0")
    base.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("generator.context.")})
    base.eval()
    pred = m([z], ["rgb"], tt).pred[0]
    known = (tt == 0).float()
    f = m.cfg.codec.factor
    want = torch.nn.functional.pixel_unshuffle(
        harmonic_fill(torch.nn.functional.pixel_shuffle(z, f), torch.nn.functional.interpolate(known, scale_factor=f)), f)
    hole = (tt == 1).expand_as(z)
    torch.testing.assert_close(pred[hole], want[hole], rtol=0, atol=1e-5)
    torch.testing.assert_close(pred[~hole], base([z], ["rgb"], tt).pred[0][~hole], rtol=0, atol=0)
    t = torch.full((2, 1), 1.0)
    torch.testing.assert_close(m([z], ["rgb"], t).pred[0], base([z], ["rgb"], t).pred[0], rtol=0, atol=0)
    # beside a clean slot that explains this one (each RGB band an affine map of the NIR pixels),
    # the one-call fill is the hidden RGB itself; with the NIR slot noisy it is the harmonic fill
    nir = torch.randn(2, 1, 16, 16)
    rgb = torch.cat([2 * nir + 1, -nir, 0.5 * nir - 3], 1)
    lat = [torch.nn.functional.pixel_unshuffle(a, f) for a in (rgb, nir)]
    t2 = torch.cat([tt, torch.zeros_like(tt)], 1)
    pred = m(lat, ["rgb", "nir"], t2).pred[0]
    torch.testing.assert_close(pred[hole], lat[0][hole], rtol=0, atol=1e-3)
    t2[:, 1] = 0.5
    pred = m(lat, ["rgb", "nir"], t2).pred[0]
    known = (tt == 0).float()
    want = torch.nn.functional.pixel_unshuffle(harmonic_fill(rgb, torch.nn.functional.interpolate(known, scale_factor=f)), f)
    torch.testing.assert_close(pred[hole], want[hole], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="needs model.target: x0"):
        tiny(context_path=8, context_fill=True)
    with pytest.raises(ValueError, match="needs model.context_path"):
        tiny(target="x0", context_fill=True)


def test_token_times_is_a_flag_without_parameters():
    """model.token_times only says how a checkpoint samples: the same parameters either way."""
    a, b = tiny(), tiny(token_times=True)
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]
