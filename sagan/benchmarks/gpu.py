"""`sagan bench-gpu`: the speed table of the README's GPU section, from one run on one machine.

For each benchmark (SAGAN-64 at batch 64 and 256, TransGAN CIFAR-10 at batch 64 with and without the
gradient penalty, SAGAN-64 with R1 + R2 exact and by finite difference, SAGAN self-attention on 128x128
feature maps) and each variant (eager fp32, eager bf16-mixed, compiled bf16, compiled bf16 with CUDA
graphs), one fresh process trains (or runs the layer) and reports images per second, milliseconds per
generator iteration, peak GPU memory and compile time.
With `--peers DIR` the peers run in the same script on their own code (checkouts under DIR, see
`sagan/benchmarks/peers.py`), so every ratio in the table comes from one machine and one run.
Prints JSON lines as it goes, then a markdown table; `--out` also writes both.

    sagan bench-gpu [--quick] [--peers DIR] [--only NAME ...] [--variants eager_fp32 ...] [--out FILE]
"""

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from sagan.benchmarks.speed import run_benchmark
from sagan.errors import UsageError

# name -> (benchmark of `sagan bench`, batch size); "attention_128" is the layer alone (`attention_benchmark`)
SUITE = {
    "sagan_64_b64": ("sagan_64", 64),
    "sagan_64_b256": ("sagan_64", 256),
    "transgan_cifar10_gp": ("transgan_cifar10", 64),
    "transgan_cifar10_nogp": ("transgan_cifar10_nogp", 64),
    "sagan_64_r1r2_b64": ("sagan_64_r1r2", 64),  # R1 + R2 exact: double backward, attention on the math kernel
    "sagan_64_r1r2_fd_b64": ("sagan_64_r1r2_fd", 64),  # by finite difference: attention on the fused kernels
    "attention_128": (None, 16),
}
# variant -> (precision, compile, compile mode)
VARIANTS = {
    "eager_fp32": ("32", False, None),
    "eager_bf16": ("bf16-mixed", False, None),
    "compile_bf16": ("bf16-mixed", True, None),
    "cudagraphs_bf16": ("bf16-mixed", True, "reduce-overhead"),
}


def attention_benchmark(
    batch_size: int, precision: str, compile: bool, compile_mode: str | None, iters: int, warmup: int,
    channels: int = 64, size: int = 128, attention: str | None = None,
) -> dict:
    """Forward and backward of one SAGAN self-attention layer on [batch, channels, size, size] maps (G's last
    block of a 128x128 model, where attention is most expensive); `attention` names the layer class
    (default: the experiments' default block, the paper's `SAGANSelfAttention2d`)."""
    from sagan.layers import attention as layers

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    layer_class = getattr(layers, attention) if attention else layers.ATTENTION_BLOCKS["official"]
    layer = layer_class(channels).to(device)
    torch.nn.init.constant_(layer.gamma, 0.5)
    x = torch.randn(batch_size, channels, size, size, device=device, requires_grad=True)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            y = layer(x)
        y.float().square().mean().backward()

    run = torch.compile(step, mode=compile_mode) if compile else step
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    for _ in range(warmup):
        run()
    sync()
    warm = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(iters):
        run()
    sync()
    steady = (time.perf_counter() - warm) / iters
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return {
        "bench": "attention_128", "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": precision, "compile": (compile_mode or "default") if compile else False,
        "batch_size": batch_size, "image_size": size, "iters": iters, "ms_per_iter": round(1000 * steady, 2),
        "img_per_s": round(batch_size / steady, 1), "compile_s": round(max(warm - start - warmup * steady, 0.0), 2),
        "peak_mem_mb": round(peak, 1), "layer": type(layer).__name__, "channels": channels,
    }


def _run(name: str, variant: str, iters: int, warmup: int) -> dict:
    bench, batch_size = SUITE[name]
    precision, compile, mode = VARIANTS[variant]
    if bench is None:
        result = attention_benchmark(batch_size, precision, compile, mode, iters, warmup)
    else:
        result = run_benchmark(bench, iters, warmup, precision, compile, "auto", batch_size, mode)
    return {**result, "suite": name, "variant": variant}


def run_isolated(function, *args) -> dict:
    """`function(*args)` in a fresh spawned process: its own peak memory, allocator and compile caches."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def table(results: list[dict]) -> str:
    """Markdown table of the results: each row's speed against its benchmark's eager fp32 run and, where the
    peers ran, against the peer's own code on the same benchmark."""
    base = {r["suite"]: r["img_per_s"] for r in results if r.get("variant") == "eager_fp32" and "error" not in r}
    peer = {r["suite"]: r["img_per_s"] for r in results if r.get("variant") == "peer" and "error" not in r}
    lines = [
        "| benchmark | variant | batch | img/s | ms / G iteration | peak GPU memory (MiB) | compile (s) | vs eager fp32 "
        "| vs peer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['suite']} | {r['variant']} | - | failed: {r['error']} | - | - | - | - | - |")
            continue
        versus = [f"{r['img_per_s'] / ref[r['suite']]:.2f}x" if r["suite"] in ref else "-" for ref in (base, peer)]
        lines.append(
            f"| {r['suite']} | {r['variant']} | {r['batch_size']} | {r['img_per_s']:,.0f} | {r['ms_per_iter']:.1f} | "
            f"{r['peak_mem_mb']:,.0f} | {r.get('compile_s', 0):.0f} | {versus[0]} | {versus[1]} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sagan bench-gpu", description="The GPU speed table, with the peers.")
    parser.add_argument("--only", action="append", choices=sorted(SUITE), help="benchmarks (default: all)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--iters", type=int, default=20, help="timed generator iterations (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first, compilation included")
    parser.add_argument("--quick", action="store_true", help="5 timed iterations after 3 warm-up ones")
    parser.add_argument("--peers", default=None, help="folder with checkouts of the peers (bench_peers.py)")
    parser.add_argument("--out", default=None, help="also write the JSON lines and the table to FILE(.md)")
    args = parser.parse_args(argv)
    iters, warmup = (5, 3) if args.quick else (args.iters, args.warmup)
    if iters < 1 or warmup < 1:
        raise UsageError("--iters and --warmup must be >= 1")
    if args.peers is not None and not Path(args.peers).is_dir():
        raise UsageError(f"--peers: no folder {args.peers} (expected checkouts of the peers, see bench_peers.py)")
    results = []
    for name in args.only or list(SUITE):
        for variant in args.variants:
            try:
                result = run_isolated(_run, name, variant, iters, warmup)
            except Exception as error:  # one failing variant (say out of memory) must not lose the others
                result = {"suite": name, "variant": variant, "error": " ".join(str(error).split())[:120]}
            results.append(result)
            print(json.dumps(result), flush=True)
    if args.peers is not None:
        from sagan.benchmarks.peers import PEERS

        for name, peer in PEERS.items():
            try:
                result = run_isolated(peer, args.peers, iters, warmup)
            except Exception as error:
                result = {"suite": name, "variant": "peer", "error": " ".join(str(error).split())[:120]}
            results.append(result)
            print(json.dumps(result), flush=True)
    text = table(results)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in results))
        Path(args.out).with_suffix(".md").write_text(text + "\n")
