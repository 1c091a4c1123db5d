"""An issue-11 experiment: how much of a checkpoint's miss is linear in its source? For each
direction, fit the model's skip (model.aligned_skip) by least squares to the residual of its mean
estimate on the train split (target latent - mean-estimate latent ~ W z_source + b, per token, on
32 px crops), add the fit to the skip and save a copy of the checkpoint; score the copy with
benchmarks/per_source.py or `earthgen evaluate`. Prints the train residual MSE before and after.

    python benchmarks/skip_lstsq.py CKPT OUT_CKPT [--data data/sample64]

CKPT must have model.aligned_skip (e.g. configs/default-model-v5.yaml's run). Not a training
method: the fit is on the train split's mean estimates only, and the adapters see shifted inputs.
"""
import argparse
import shutil

import torch
from pathlib import Path
from safetensors.torch import save_file
from earthgen_cli import checkpoint as ck
from earthgen_cli.data.chips import ChipDataset
from earthgen_cli.flow.generate import Estimate, SamplingOptions, translate_latents
p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("checkpoint")
p.add_argument("out")
p.add_argument("--data", default="data/sample64")
args = p.parse_args()
src_ck, out_ck = Path(args.checkpoint), Path(args.out)
model, info = ck.load_model(src_ck)
opts = SamplingOptions(estimate=Estimate.mean)
g = torch.Generator().manual_seed(0)
for a, b in [("rgb", "nir"), ("nir", "rgb"), ("rgb", "ms"), ("ms", "rgb"), ("ms", "nir")]:
    ds = ChipDataset(args.data, "train", [a, b])
    idx = [i for i, c in enumerate(ds.chips) if a in c.modalities and b in c.modalities and not c.flags]
    Zs, Rs = [], []
    for k in range(0, len(idx), 32):
        items = [ds[(i, (a, b))] for i in idx[k:k + 32]]
        xa = torch.stack([it["images"][a] for it in items])
        xb = torch.stack([it["images"][b] for it in items])
        # 32 px crops: the model's native tile
        xa = torch.cat([xa[..., r:r + 32, c:c + 32] for r in (0, 32) for c in (0, 32)])
        xb = torch.cat([xb[..., r:r + 32, c:c + 32] for r in (0, 32) for c in (0, 32)])
        with torch.no_grad():
            za, zb = model.codecs[a].encode(xa), model.codecs[b].encode(xb)
            noise = torch.randn(zb.shape, generator=g)
            gsd = torch.tensor([float(ds.chips[i].gsd or 10.0) for i in idx[k:k + 32]] * 4)
            pred = translate_latents(model, {a: za}, b, noise, opts, gsd=gsd).latents[b]
        Zs.append(za.permute(0, 2, 3, 1).reshape(-1, za.shape[1]))
        Rs.append((zb - pred).permute(0, 2, 3, 1).reshape(-1, zb.shape[1]))
    Z, R = torch.cat(Zs).double(), torch.cat(Rs).double()
    A = torch.cat([Z, torch.ones(len(Z), 1, dtype=torch.float64)], 1)
    sol = torch.linalg.lstsq(A, R, driver="gelsd").solution  # (Ca+1, Cb)
    before, after = R.pow(2).mean().item(), (R - A @ sol).pow(2).mean().item()
    conv = model.generator.skip[f"{a}_to_{b}"]
    with torch.no_grad():
        conv.weight += sol[:-1].T.float()[:, :, None, None]
        conv.bias += sol[-1].float()
    print(f"{a}->{b}: {len(idx)} chips, residual MSE {before:.4f} -> {after:.4f} (train, latent)", flush=True)
shutil.copytree(src_ck, out_ck, dirs_exist_ok=True)
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out_ck / "ema.safetensors")
print("saved", out_ck)
