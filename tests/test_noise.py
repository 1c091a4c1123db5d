import torch

from earthgen_cli.inference.noise import NoiseField


def test_noise_is_a_function_of_position_only():
    field = NoiseField(seed=7, channels=4)
    whole = field.crop(-10, 30, 150, 100)
    part = field.crop(40, 55, 20, 33)
    assert torch.equal(part, whole[:, 50:70, 25:58])


def test_batch_matches_single_crops_and_latent_scale():
    field = NoiseField(seed=1, channels=2)
    b = field.batch([(0, 0), (64, 128)], 8, 8, scale=8)
    assert torch.equal(b[1], field.crop(8, 16, 8, 8))


def test_seed_and_salt_change_the_noise_and_it_is_standard_normal():
    a = NoiseField(0, 3).crop(0, 0, 128, 128)
    assert not torch.equal(a, NoiseField(1, 3).crop(0, 0, 128, 128))
    assert not torch.equal(a, NoiseField(0, 3, salt=1).crop(0, 0, 128, 128))
    assert abs(a.mean().item()) < 0.02 and abs(a.std().item() - 1) < 0.02
