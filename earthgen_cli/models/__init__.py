"""torch (+ diffusers building blocks) only: codecs, the scene transformer, adapters. No files, no devices."""
