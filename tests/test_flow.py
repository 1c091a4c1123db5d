"""Flow maths: path identities, samplers against analytic solutions, losses, slot times."""

from __future__ import annotations

import math

import pytest
import torch

from earthgen_cli.flow import losses, path, sampling
from earthgen_cli.flow.sampling import Sampler
from earthgen_cli.models.config import PredictionTarget


def test_path_identities():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, 5, 5, generator=g), torch.randn(4, 3, 5, 5, generator=g)
    t = torch.tensor([0.0, 0.3, 0.7, 1.0])
    xt = path.interpolate(x0, eps, t)
    assert torch.equal(xt[0], x0[0]) and torch.equal(xt[3], eps[3])
    v = path.velocity_target(x0, eps)
    torch.testing.assert_close(path.x0_from_velocity(xt, v, t), x0)
    torch.testing.assert_close(path.velocity_from_x0(xt[1:], x0[1:], t[1:]), v[1:], rtol=1e-4, atol=1e-4)


def test_schedule_shift():
    s = sampling.get_schedule(8, shift=3.0)
    assert s[0] == 1.0 and s[-1] == 0.0 and all(a > b for a, b in zip(s, s[1:]))
    assert s[4] > 0.5  # shift > 1 spends more of the steps at high noise
    assert sampling.get_schedule(4) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    with pytest.raises(ValueError):
        sampling.get_schedule(0)


def test_euler_constant_field_is_exact():
    x1 = torch.randn(2, 3)
    c = torch.tensor([1.0, -2.0, 0.5])
    out = sampling.sample(lambda x, t: c.expand_as(x), x1, sampling.get_schedule(3, shift=2.0))
    torch.testing.assert_close(out, x1 - c)


@pytest.mark.parametrize("sampler", [Sampler.euler, Sampler.heun])
def test_x0_prediction_of_a_point_mass_reaches_it(sampler):
    # Data is a single point a: the exact x0-prediction is a, so every step lands on the path to a.
    a = torch.tensor([[0.3, -0.7]])
    vel = lambda x, t: path.to_velocity(a.expand_as(x), x, torch.full((x.shape[0],), t), PredictionTarget.x0)
    out = sampling.sample(vel, torch.randn(5, 2), sampling.get_schedule(2), sampler)
    torch.testing.assert_close(out, a.expand(5, 2))


def test_linear_field_convergence_orders():
    # dx/dt = k x from t=1 to 0 has x(0) = x(1) exp(-k): Euler is first order, Heun second order.
    k, x1 = 1.5, torch.ones(1)
    exact = math.exp(-k)
    def err(sampler, n):
        return abs(sampling.sample(lambda x, t: k * x, x1, sampling.get_schedule(n), sampler).item() - exact)
    assert err(Sampler.euler, 40) < err(Sampler.euler, 20) * 0.6
    assert err(Sampler.heun, 40) < err(Sampler.heun, 20) * 0.3
    assert err(Sampler.heun, 20) < err(Sampler.euler, 20) / 10


def _gaussian_velocity(mu: float, s: float):
    # Exact marginal velocity E[eps - x0 | x_t] for data N(mu, s^2) under the linear path.
    def v(x, t):
        var = (1 - t) ** 2 * s**2 + t**2
        r = x - (1 - t) * mu
        return t / var * r - (mu + (1 - t) * s**2 / var * r)
    return v


@pytest.mark.parametrize("sampler", list(Sampler))
def test_samplers_transport_noise_to_gaussian_data(sampler):
    mu, s, n = 2.0, 0.5, 20000
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(n, generator=g)
    noise = lambda i: torch.randn(n, generator=g)
    out = sampling.sample(_gaussian_velocity(mu, s), x1, sampling.get_schedule(100), sampler, noise=noise)
    assert out.mean().item() == pytest.approx(mu, abs=0.02)
    assert out.std().item() == pytest.approx(s, abs=0.02)
    if sampler is not Sampler.euler_maruyama:  # the ODE is the monotone map mu + s * x1
        assert torch.allclose(out, mu + s * x1, atol=0.04)  # Euler: O(1/steps)


def test_euler_maruyama_requires_noise():
    with pytest.raises(ValueError, match="needs noise"):
        sampling.sample(lambda x, t: x, torch.zeros(2), sampling.get_schedule(2), Sampler.euler_maruyama)


def test_guidance_extrapolates():
    c, u = torch.tensor([2.0]), torch.tensor([1.0])
    assert sampling.guided(c, u, 1.0).item() == 2.0 and sampling.guided(c, u, 3.0).item() == 4.0


def test_flow_loss_mask_and_beta_nll():
    pred = torch.zeros(2, 1, 2, 2, requires_grad=True)
    target = torch.ones(2, 1, 2, 2)
    target[1] = 100.0  # a masked slot must not count
    mask = torch.tensor([1.0, 0.0]).reshape(2, 1, 1, 1)
    assert losses.flow_loss(pred, target, mask).item() == pytest.approx(1.0)
    # With logvar = 0 the NLL is half the squared error (var^beta = 1).
    lv = torch.zeros(2, 1, 2, 2)
    assert losses.flow_loss(pred, target, mask, lv, beta=0.5).item() == pytest.approx(0.5)
    # The NLL is minimised at logvar = log(err^2).
    lv = torch.zeros(2, 1, 2, 2, requires_grad=True)
    opt = torch.optim.SGD([lv], lr=0.5)
    target[0] = 3.0
    for _ in range(300):
        opt.zero_grad()
        losses.flow_loss(pred.detach(), target, mask, lv, beta=0.0).backward()
        opt.step()
    assert lv[0].mean().item() == pytest.approx(math.log(9.0), abs=0.05)
    assert lv.grad[1].abs().max().item() == 0.0


def test_chip_weight_makes_each_sample_count_by_its_own_variance():
    from earthgen_cli.flow.objective import chip_weight

    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 3, 8, 8, generator=g)
    x0[1] = x0[1] * 0.1 + 5.0  # a flat chip at another level: variance 0.01, the level ignored
    valid = torch.ones(2, 1, 8, 8)
    valid[0, :, :4] = 0  # nodata cells do not count in the variance
    w = chip_weight(x0, valid, 0.02)
    v0 = x0[0][:, 4:].var(dim=(1, 2), unbiased=False).mean()
    v1 = x0[1].var(dim=(1, 2), unbiased=False).mean()
    assert w.shape == (2, 1, 1, 1)
    assert w[0].item() == pytest.approx(1 / (v0.item() + 0.02), rel=1e-5)
    assert w[1].item() == pytest.approx(1 / (v1.item() + 0.02), rel=1e-5)
    # Through flow_loss (a weighted mean): equal squared errors per sample give the same loss, and
    # an error on the flat sample costs ~20x what the same error costs on the contrasty one.
    pred = x0.clone()
    pred[1] += 0.1
    flat_err = losses.flow_loss(pred, x0, valid * w).item()
    pred = x0.clone()
    pred[0] += 0.1
    contrasty_err = losses.flow_loss(pred, x0, valid * w).item()
    assert flat_err / contrasty_err == pytest.approx(w[1].item() * 64 / (w[0].item() * 32), rel=1e-4)
    assert flat_err / contrasty_err > 10


def test_scene_consistency_infonce():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(6, 4, 16, generator=g)
    log_tau = torch.tensor(math.log(0.05), requires_grad=True)
    aligned = losses.scene_consistency_loss(s, s + 0.01 * torch.randn(6, 4, 16, generator=g), log_tau)
    shuffled = losses.scene_consistency_loss(s, s.roll(1, dims=0), log_tau)
    assert aligned.item() < 0.05 < math.log(6) < shuffled.item()
    aligned.backward()
    assert log_tau.grad is not None and log_tau.grad.item() != 0.0
    sim = losses.scene_similarity(s, s)
    torch.testing.assert_close(sim.diagonal(), torch.ones(6))


def test_calibration_loss_stops_gradient_to_backbone():
    backbone = torch.nn.Linear(3, 3)
    adapter = torch.nn.Linear(3, 3)
    x = torch.randn(4, 3)
    loss = losses.calibration_loss(adapter, backbone(x), torch.randn(4, 3), torch.ones(4, 1))
    loss.backward()
    assert backbone.weight.grad is None and adapter.weight.grad.abs().sum() > 0


def test_slot_times_modes():
    g = torch.Generator().manual_seed(0)
    st = path.sample_slot_times(200, 2, (0.0, 1.0, 0.0), g)
    assert ((st.t == 0).sum(1) == 1).all() and torch.equal(st.loss_mask, st.t > 0)
    st = path.sample_slot_times(200, 2, (0.0, 0.0, 1.0), g)
    assert ((st.t == 1).sum(1) == 1).all() and st.loss_mask.all()
    st = path.sample_slot_times(300, 2, (1.0, 1.0, 1.0), g)
    assert set(st.mode.tolist()) == {0, 1, 2} and ((st.t > 0) & (st.t < 1))[st.mode == 0].all()
    assert path.sample_slot_times(5, 1, (0.0, 1.0, 0.0), g).loss_mask.all()


def test_slot_times_uniform_fraction_covers_low_noise():
    """time_mean 2 alone puts ~2 % of times below 0.5; time_uniform 0.3 adds ~15 % there, and
    time_uniform 0 draws exactly what it drew before the option existed."""
    draw = lambda u: path.sample_slot_times(20000, 1, (1.0, 0.0, 0.0), torch.Generator().manual_seed(1),  # noqa: E731
                                            time_mean=2.0, time_uniform=u).t
    low = lambda t: float((t < 0.5).float().mean())  # noqa: E731
    assert low(draw(0.0)) < 0.04 and 0.15 < low(draw(0.3)) < 0.2
    assert torch.equal(draw(0.0), path.logit_normal((20000, 1), torch.Generator().manual_seed(1), mean=2.0))


def test_slot_times_time_one_trains_the_mean_estimates_pure_noise_time():
    """time_one 0.3 sets ~30 % of the times to exactly 1 (the mean estimate's x0 at t=1, which
    logit-normal(2) reaches above 0.98 in only ~3 % of its draws); in conditional mode the source
    stays clean. time_one 0 draws exactly what it drew before the option existed."""
    draw = lambda p, modes=(1.0, 0.0, 0.0): path.sample_slot_times(  # noqa: E731
        20000, 2, modes, torch.Generator().manual_seed(2), time_mean=2.0, time_uniform=0.3, time_one=p)
    assert float((draw(0.0).t == 1.0).float().mean()) < 0.001
    assert 0.28 < float((draw(0.3).t == 1.0).float().mean()) < 0.32
    cond = draw(0.3, (0.0, 1.0, 0.0)).t
    assert ((cond == 0.0).sum(1) == 1).all()  # one clean source per sample, never moved to t=1
    assert 0.28 < float((cond.max(1).values == 1.0).float().mean()) < 0.32
    assert torch.equal(draw(0.0).t, path.sample_slot_times(20000, 2, (1.0, 0.0, 0.0), torch.Generator().manual_seed(2),
                                                           time_mean=2.0, time_uniform=0.3).t)


def test_masked_slot_times_clean_outside_a_rectangle_noisy_inside():
    """One slot per sample known outside a random rectangle of tokens (t=0) and at one time inside
    (half exactly 1, the one-call fill), the other slots as drawn; the loss mask follows the
    noisy tokens; drawn from the generator alone (a resumed run draws the same)."""
    draw = lambda: path.mask_slot_times(  # noqa: E731
        path.sample_slot_times(400, 2, (0.0, 1.0, 0.0), torch.Generator().manual_seed(3)), (16, 12),
        torch.Generator().manual_seed(4))
    st = draw()
    assert st.t.shape == (400, 2, 16, 12) and torch.equal(st.t, draw().t)
    noisy = st.t > 0
    frac = noisy.float().mean((2, 3))
    masked = (frac > 0) & (frac < 1)  # (B, K): the slot with a hole
    assert (masked.sum(1) <= 1).all() and masked.any(1).float().mean() > 0.9
    for i in range(0, 400, 37):
        k = int(masked[i].float().argmax())
        if not masked[i, k]:
            continue
        rows, cols = noisy[i, k].any(1).nonzero()[:, 0], noisy[i, k].any(0).nonzero()[:, 0]
        box = noisy[i, k, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all() and int(noisy[i, k].sum()) == box.numel()  # one filled rectangle
        assert st.t[i, k][noisy[i, k]].unique().numel() == 1  # one time inside it
        assert 2 <= box.shape[0] <= 12 and 1 <= box.shape[1] <= 9
    assert torch.equal(st.loss_mask, noisy.flatten(2).any(2))
    inner = st.t.flatten(2).amax(2)[masked]
    assert 0.4 < float((inner == 1.0).float().mean()) < 0.6


def test_masked_loss_ignores_the_known_tokens():
    """FlowObjective with per-token times trains only the noisy tokens: the targets under the known
    (t=0) tokens may be anything, and with every token noisy it equals the per-slot loss."""
    from types import SimpleNamespace

    from earthgen_cli.flow.objective import FlowObjective
    from earthgen_cli.models.config import model_config
    from earthgen_cli.models.earthgen import EarthGenModel

    torch.manual_seed(0)
    m = EarthGenModel(model_config("tiny", ("rgb", "nir"), dict(rgb=3, nir=1)))
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.05)
    obj = FlowObjective(m, SimpleNamespace(lambda_sc=0.0, lambda_calib=0.0, beta_nll=0.0, chip_norm=0.0))
    x0 = [torch.randn(2, 12, 8, 8)]
    eps = [torch.randn(2, 12, 8, 8)]
    valid = [torch.ones(2, 1, 8, 8)]
    hp = 8 // m.cfg.patch
    t = torch.full((2, 1), 0.6)
    args = dict(valid=valid, mods=["rgb"], eps=eps, loss_mask=torch.ones(2, 1, dtype=torch.bool), gsd=None,
                drop=torch.zeros(2, dtype=torch.bool))
    plain = obj(x0=x0, t=t, **args)["mse"]
    torch.testing.assert_close(obj(x0=x0, t=t[:, :, None, None].repeat(1, 1, hp, hp), **args)["mse"], plain)
    tt = t[:, :, None, None].repeat(1, 1, hp, hp)
    tt[:, :, :, : hp // 2] = 0.0  # left half known
    a = obj(x0=x0, t=tt, **args)["mse"]
    assert not torch.allclose(a, plain)
    # Known tokens enter the network clean, but no loss is taken on them: scaling their target
    # (the known values themselves) changes the noisy half's loss only through the network.
    cut = 8 // 2
    b_eps = [eps[0].clone()]
    b_eps[0][..., :cut] = 100.0  # their noise never enters x_t at t=0, nor their velocity target the loss
    torch.testing.assert_close(obj(x0=x0, t=tt, **{**args, "eps": b_eps})["mse"], a)
