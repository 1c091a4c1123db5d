"""earthgen: multi-modal remote-sensing generation over georeferenced GeoTIFF scenes."""

__version__ = "0.1.0"
