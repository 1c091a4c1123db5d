"""Networks only (torch, diffusers blocks, einops): codecs, scene transformer, routed generator, adapters.
No files, no device choice: callers build on CPU in fp32 and move the model."""
