"""earthgen: multi-modal remote-sensing generation over georeferenced GeoTIFF scenes.

The Python API (`earthgen_cli.api`, on xarray DataArrays) is available at the top:
`earthgen_cli.translate`, `joint`, `inpaint`, `extend`, `load_model`. It is imported on first use,
so the command line does not pay for xarray.
"""

__version__ = "0.1.0"

_API = ("translate", "joint", "inpaint", "extend", "load_model", "Model")


def __getattr__(name: str):
    if name in _API:
        from earthgen_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'earthgen_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
