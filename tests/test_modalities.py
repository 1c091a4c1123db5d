import numpy as np
import pytest
import torch

from earthgen_cli.errors import EarthgenError
from earthgen_cli.modalities import (
    MODALITIES, cast_to_dtype, default_scaling, get_modality, guess_modality, linear_to_db,
    parse_modality_list,
)


def test_registry_has_the_six_modalities_of_the_design():
    assert set(MODALITIES) == {"rgb", "sar", "nir", "pan", "ms", "osm"}
    assert [m.max_bands for m in MODALITIES.values()] == [3, 2, 1, 1, 6, 3]
    assert get_modality("osm").resampling == "nearest"


def test_unknown_modality_is_a_user_error():
    with pytest.raises(EarthgenError, match="unknown modality 'lidar'"):
        get_modality("lidar")
    with pytest.raises(EarthgenError, match="twice"):
        parse_modality_list("rgb,rgb")


def test_guess_only_when_unambiguous():
    assert guess_modality(6) == "ms" and guess_modality(2) == "sar"
    assert guess_modality(3, "uint16") == "rgb"
    assert guess_modality(3, "uint8") is None and guess_modality(1) is None


def test_scaling_roundtrip_numpy_and_torch():
    s = default_scaling("sar", 2)
    x = np.array([[[-25.0]], [[-5.0]]], dtype=np.float32)
    y = s.to_model(x)
    assert np.allclose(y.ravel(), [-1.0, 1.0])
    assert np.allclose(s.from_model(y), x)
    t = torch.from_numpy(x)[None]
    assert torch.allclose(s.from_model(s.to_model(t)), t)
    assert default_scaling("rgb", 3, "uint8").high == (255.0,) * 3


def test_cast_rounds_clips_and_avoids_nodata():
    out = cast_to_dtype(np.array([-3.0, 0.2, 0.6, 70000.0]), "uint16", nodata=0)
    assert out.tolist() == [1, 1, 1, 65535]
    assert cast_to_dtype(np.array([1.5]), "float32").dtype == np.float32


def test_linear_to_db():
    out = linear_to_db(np.array([1.0, 0.1, 0.0, np.nan]))
    assert np.allclose(out[:2], [0.0, -10.0]) and np.isnan(out[2:]).all()
