"""PyTorch side of `cargo bench -p flux-core --bench vs_torch`.

Builds diffusers' FluxTransformer2DModel with random weights (config "small": hidden 1536, 12
heads of 128, 2 double + 4 single blocks; "dev": FLUX.1-dev's shapes, 24 heads, 19 + 38 blocks;
guidance on), saves it in the diffusers layout for the engine to load, then answers one command
per line on stdin (replies on stdout). N image tokens, R Kontext reference tokens:

    inputs N R   write random inputs to DIR/inputs_N_R.safetensors               -> "ok"
    run N R      one timed forward on them               -> "ms <float> peak_mib <float>"
    steps N R K  K forwards with Euler updates, timed     -> "ms <float> peak_mib <float>"
    save N R     write the last output to DIR/torch_out_N_R.safetensors          -> "ok"
    quit

peak_mib: the device's peak allocated memory during the command (0 on the CPU).
Usage: vs_torch.py DIR --threads T [--text-tokens 128] [--config small|dev] [--device cpu|cuda]
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
    ap.add_argument("--config", choices=["small", "dev"], default="small")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cuda = args.device == "cuda"
    # The GPU comparison is bf16 (diffusers' usual eager setup); the CPU one f32.
    dtype = torch.bfloat16 if cuda else torch.float32
    blocks = {"small": (2, 4), "dev": (19, 38)}[args.config]
    heads = {"small": 12, "dev": 24}[args.config]
    with torch.device(args.device):  # random init straight on the device (12 B parameters)
        model = FluxTransformer2DModel(
            patch_size=1,
            in_channels=64,
            num_layers=blocks[0],
            num_single_layers=blocks[1],
            attention_head_dim=128,
            num_attention_heads=heads,
            joint_attention_dim=4096,
            pooled_projection_dim=768,
            guidance_embeds=True,
            axes_dims_rope=(16, 56, 56),
        )
    model = model.to(dtype).eval()
    model.save_pretrained(f"{args.dir}/transformer", safe_serialization=True)
    print(
        f"torch {torch.__version__}, {args.device} {dtype}, {torch.get_num_threads()} threads, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters",
        file=sys.stderr,
    )
    reply("ready")

    def forward(x, img):
        return model(
            hidden_states=img,
            encoder_hidden_states=x["txt"],
            pooled_projections=x["y"],
            timestep=x["timesteps"],
            img_ids=x["img_ids"],
            txt_ids=x["txt_ids"],
            guidance=x["guidance"],
            return_dict=False,
        )[0]

    def timed(work):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        with torch.inference_mode():
            out = work()
        if cuda:
            torch.cuda.synchronize()
        ms = (time.perf_counter() - start) * 1e3
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
        reply(f"ms {ms:.3f} peak_mib {peak:.0f}")
        return out

    outputs = {}
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "quit":
            break
        n, r = int(rest[0]), int(rest[1])
        path = f"{args.dir}/inputs_{n}_{r}.safetensors"
        if cmd == "inputs":
            def grid(tokens, index):
                side = math.isqrt(tokens)
                rows, cols = torch.meshgrid(
                    torch.arange(side), torch.arange(side), indexing="ij"
                )
                return torch.stack([torch.full_like(rows, index), rows, cols], -1).reshape(-1, 3)

            # Kontext: the reference's tokens follow the image's, with id[0] = 1.
            img_ids = torch.cat([grid(n, 0)] + ([grid(r, 1)] if r else []))
            gen = torch.Generator().manual_seed(n + r)
            save_file(
                {
                    "img": torch.randn(1, n + r, 64, generator=gen),
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
            continue
        x = {k: v.to(args.device, dtype) for k, v in load_file(path).items()}
        if cmd == "run":
            outputs[(n, r)] = timed(lambda: forward(x, x["img"]))
        elif cmd == "steps":
            def loop(k=int(rest[2])):
                img = x["img"]
                for _ in range(k):  # Euler steps of 1/k on the image tokens only
                    v = forward(x, img)
                    img = torch.cat([img[:, :n] - v[:, :n] / k, img[:, n:]], 1)
                return img

            timed(loop)
        elif cmd == "save":
            out = outputs[(n, r)].float().cpu().contiguous()
            save_file({"out": out}, f"{args.dir}/torch_out_{n}_{r}.safetensors")
            reply("ok")
        else:
            raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
