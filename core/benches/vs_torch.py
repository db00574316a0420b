"""PyTorch side of `cargo bench -p flux-core --bench vs_torch`.

Builds diffusers' FluxTransformer2DModel with random weights (the "small" config: hidden 1536,
12 heads of 128, 2 double + 4 single blocks, guidance on), saves it in the diffusers layout for
the engine to load, then answers one command per line on stdin (replies on stdout):

    inputs N   write random inputs for N image tokens to DIR/inputs_N.safetensors -> "ok"
    run N      one timed forward on those inputs                                 -> "ms <float>"
    save N     write the last output for N to DIR/torch_out_N.safetensors        -> "ok"
    quit

Usage: vs_torch.py DIR --threads T [--text-tokens 128]
"""

import argparse
import math
import sys
import time

import torch
from diffusers import FluxTransformer2DModel
from safetensors.torch import load_file, save_file


def reply(line):
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--text-tokens", type=int, default=128)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=2,
        num_single_layers=4,
        attention_head_dim=128,
        num_attention_heads=12,
        joint_attention_dim=4096,
        pooled_projection_dim=768,
        guidance_embeds=True,
        axes_dims_rope=(16, 56, 56),
    ).eval()
    model.save_pretrained(f"{args.dir}/transformer", safe_serialization=True)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters",
        file=sys.stderr,
    )
    reply("ready")

    outputs = {}
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "quit":
            break
        n = int(rest[0])
        path = f"{args.dir}/inputs_{n}.safetensors"
        if cmd == "inputs":
            side = math.isqrt(n)
            rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
            img_ids = torch.stack([torch.zeros_like(rows), rows, cols], -1).reshape(n, 3)
            gen = torch.Generator().manual_seed(n)
            save_file(
                {
                    "img": torch.randn(1, n, 64, generator=gen),
                    "txt": torch.randn(1, args.text_tokens, 4096, generator=gen),
                    "y": torch.randn(1, 768, generator=gen),
                    "timesteps": torch.tensor([0.7]),
                    "guidance": torch.tensor([3.5]),
                    "img_ids": img_ids.float(),
                    "txt_ids": torch.zeros(args.text_tokens, 3),
                },
                path,
            )
            reply("ok")
        elif cmd == "run":
            x = load_file(path)
            with torch.inference_mode():
                start = time.perf_counter()
                out = model(
                    hidden_states=x["img"],
                    encoder_hidden_states=x["txt"],
                    pooled_projections=x["y"],
                    timestep=x["timesteps"],
                    img_ids=x["img_ids"],
                    txt_ids=x["txt_ids"],
                    guidance=x["guidance"],
                    return_dict=False,
                )[0]
                ms = (time.perf_counter() - start) * 1e3
            outputs[n] = out
            reply(f"ms {ms:.3f}")
        elif cmd == "save":
            save_file({"out": outputs[n].contiguous()}, f"{args.dir}/torch_out_{n}.safetensors")
            reply("ok")
        else:
            raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
