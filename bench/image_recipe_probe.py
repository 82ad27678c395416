"""Scratch experiments: which image encoder + recipe reaches 93 % on Fashion-MNIST fastest on CPU.

Not a test and not a benchmark with a target; it is how the defaults of ``ImageEncoder``
and the image-heavy Predictor recipe were chosen. Two kinds of measurement:

``speed``     images/s of one training step (forward + backward + AdamW) per architecture,
              in short interleaved runs with the seed CNN as the yardstick, medians
              reported — the machine is shared, so absolute numbers drift, ratios less so.
``threads``   wall-clock images/s with 1 or 2 threads and OpenMP's default (spinning)
              or PASSIVE wait policy.
``accuracy``  validation/test accuracy after a fixed number of images seen (so a busy
              machine changes the wall time, not the result), on plain tensors with the
              augmentation done batch-wise.

Examples::

    .venv/bin/python bench/image_recipe_probe.py speed --archs seed,encoder --threads 1,2
    .venv/bin/python bench/image_recipe_probe.py accuracy --arch encoder --epochs 5 --lr 3e-3

Results are appended as JSON lines to ``bench/out/image_recipe_probe.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OUT = Path(__file__).parent / "out"
LOG = OUT / "image_recipe_probe.jsonl"


# --- data ------------------------------------------------------------------------------------


def load_fashion(num_val: int = 6000, seed: int = 0):
    """(train_x, train_y, val_x, val_y, test_x, test_y); x as (N, 1, 28, 28) float in [-1, 1].

    The validation rows are held out of the 60,000 training rows, the way a Predictor
    holds out its tuning split; recipes are compared on them, the test set is only reported.
    """
    from polymodal import datasets

    train, test = datasets.load("fashion-mnist", split=True)

    def tensors(df):
        x = torch.from_numpy(np.stack(df["image"].to_numpy())).float()  # (N, 28, 28)
        x = x.div_(127.5).sub_(1.0).unsqueeze(1)  # (N, 1, 28, 28)
        return x, torch.from_numpy(df["label"].to_numpy().astype(np.int64))

    x, y = tensors(train)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val, fit = order[:num_val], order[num_val:]
    tx, ty = tensors(test)
    return x[fit], y[fit], x[val], y[val], tx, ty


def augment_batch(x: torch.Tensor, shift_px: int, hflip: bool, g: torch.Generator) -> torch.Tensor:
    """Random shift of up to ``shift_px`` (pad with -1, random crop) and optional h-flip."""
    if shift_px:
        b, _, h, w = x.shape
        padded = F.pad(x, (shift_px,) * 4, value=-1.0)  # (B, C, H+2s, W+2s)
        dy = torch.randint(0, 2 * shift_px + 1, (b,), generator=g)
        dx = torch.randint(0, 2 * shift_px + 1, (b,), generator=g)
        rows = (dy[:, None] + torch.arange(h)[None])  # (B, H)
        cols = (dx[:, None] + torch.arange(w)[None])  # (B, W)
        x = padded[torch.arange(b)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :]]
    if hflip:
        flip = torch.rand(x.shape[0], generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


# --- architectures ------------------------------------------------------------------------------


class SeedCNN(nn.Module):
    """The seed's CNN: Conv 32 3x3 + ReLU -> MaxPool 2 -> Flatten -> Dense 64 + ReLU -> Dense 10."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(32 * 13 * 13, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)


class PlainCNN(nn.Module):
    """A VGG-ish CNN from a spec string like ``"32,p,64,p,128"``: ints are conv3x3+BN+ReLU,
    ``p`` a 2x2 max-pool, ``s<C>`` a stride-2 conv; then global average pooling + linear."""

    def __init__(self, spec: str, norm: str = "bn", head_dim: int = 128, head: str = "gap"):
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for tok in spec.split(","):
            if tok == "p":
                layers.append(nn.MaxPool2d(2))
                continue
            stride = 2 if tok.startswith("s") else 1
            out = int(tok.lstrip("s"))
            layers.append(nn.Conv2d(c, out, 3, stride=stride, padding=1, bias=norm == "none"))
            if norm == "bn":
                layers.append(nn.BatchNorm2d(out))
            elif norm.startswith("gn"):
                layers.append(nn.GroupNorm(int(norm[2:] or 8), out))
            layers.append(nn.ReLU(inplace=True))
            c = out
        self.features = nn.Sequential(*layers)
        self.flat = head == "flat"
        side = self.features(torch.zeros(1, 1, 28, 28)).shape[-1]
        self.proj = nn.Linear(c * side * side if self.flat else c, head_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.1), nn.Linear(head_dim, 10))

    def forward(self, x):
        h = self.features(x)
        h = h.flatten(1) if self.flat else h.mean(dim=(2, 3))
        return self.head(self.proj(h))


class EncoderClassifier(nn.Module):
    """polymodal's ImageEncoder (with the given keyword arguments) + a linear head,
    the way FusionPredictor uses it for a single image column (minus the fusion MLP)."""

    def __init__(self, **kwargs):
        super().__init__()
        from polymodal.models.encoders import ImageEncoder

        self.encoder = ImageEncoder(1, 28, **kwargs)
        out_dim = kwargs.get("out_dim", 128)
        self.head = nn.Sequential(nn.GELU(), nn.Dropout(0.1), nn.Linear(out_dim, 10))

    def forward(self, x):
        return self.head(self.encoder(x))


def build(arch: str, **kwargs) -> nn.Module:
    if arch == "seed":
        return SeedCNN()
    if arch == "encoder":
        return EncoderClassifier(**kwargs)
    if arch.startswith("plain:"):
        return PlainCNN(arch.split(":", 1)[1], **kwargs)
    raise SystemExit(f"unknown arch {arch!r}")


def count_macs(model: nn.Module, shape=(1, 1, 28, 28)) -> int:
    """Multiply-adds of one forward pass (convolutions and linear layers only)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output.numel() // output.shape[0] * k
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.zeros(shape))
    for h in handles:
        h.remove()
    return total


# --- speed -------------------------------------------------------------------------------------


def step_rate(model: nn.Module, batch_size: int, num_steps: int, channels_last: bool) -> float:
    """Images per CPU-second of ``num_steps`` training steps on random data (after 2
    warm-up steps). CPU time, not wall time: with one thread on a shared machine it is
    close to what a quiet machine's wall clock would show."""
    model.train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 1, 28, 28)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    for i in range(num_steps + 2):
        if i == 2:
            start = time.process_time()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return num_steps * batch_size / (time.process_time() - start)


def cmd_speed(args) -> None:
    archs = args.archs.split(";")
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        rates: dict[str, list[float]] = {a: [] for a in archs}
        for _ in range(args.repeats):  # interleaved, so load changes hit every arch alike
            for arch in archs:
                name, kwargs = parse_arch(arch)
                torch.manual_seed(0)
                model = build(name, **kwargs)
                rates[arch].append(step_rate(model, args.batch_size, args.steps, args.channels_last))
        seed_rate = statistics.median(rates[archs[0]])
        for arch in archs:
            name, kwargs = parse_arch(arch)
            model = build(name, **kwargs)
            med = statistics.median(rates[arch])
            rec = {"kind": "speed", "arch": arch, "threads": threads, "batch_size": args.batch_size,
                   "channels_last": args.channels_last, "images_per_s_median": round(med),
                   "ratio_to_first": round(med / seed_rate, 3),
                   "macs": count_macs(model), "params": sum(p.numel() for p in model.parameters()),
                   "load_avg": os.getloadavg()[0]}
            print(json.dumps(rec), flush=True)
            append_log(rec)


def cmd_threads(args) -> None:
    """Wall-clock images/s with 1 vs 2 threads and OpenMP's default vs PASSIVE wait policy.

    Each setting runs in a fresh interpreter (the policy is read when OpenMP starts),
    interleaved and repeated; medians are reported.
    """
    import subprocess
    import sys

    settings = [(1, None), (2, None), (2, "PASSIVE"), (1, "PASSIVE")]
    rates: dict[tuple, list[float]] = {s: [] for s in settings}
    code = ("import sys, time, torch; sys.path.insert(0, {bench!r}); "
            "from image_recipe_probe import build, parse_arch; "
            "from torch.nn import functional as F; torch.set_num_threads({threads}); "
            "torch.manual_seed(0); name, kw = parse_arch({arch!r}); m = build(name, **kw); "
            "opt = torch.optim.AdamW(m.parameters(), 1e-3); "
            "x = torch.randn({bs}, 1, 28, 28); y = torch.randint(0, 10, ({bs},))\n"
            "for i in range({steps} + 2):\n"
            "    t = time.perf_counter() if i == 2 else t if i > 2 else 0\n"
            "    opt.zero_grad(); F.cross_entropy(m(x), y).backward(); opt.step()\n"
            "print({steps} * {bs} / (time.perf_counter() - t))")
    for _ in range(args.repeats):
        for threads, policy in settings:
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            if policy:
                env["OMP_WAIT_POLICY"] = policy
            src = code.format(bench=str(Path(__file__).parent), threads=threads, arch=args.arch,
                              bs=args.batch_size, steps=args.steps)
            out = subprocess.run([sys.executable, "-c", src], env=env, capture_output=True,
                                 text=True, check=True).stdout
            rates[(threads, policy)].append(float(out.strip().splitlines()[-1]))
    for (threads, policy), values in rates.items():
        rec = {"kind": "threads", "arch": args.arch, "threads": threads,
               "omp_wait_policy": policy or "default", "batch_size": args.batch_size,
               "wall_images_per_s_median": round(statistics.median(values)),
               "runs": [round(v) for v in values], "load_avg": os.getloadavg()[0]}
        print(json.dumps(rec), flush=True)
        append_log(rec)


def parse_arch(arch: str) -> tuple[str, dict]:
    """``"encoder{...json kwargs...}"`` or ``"plain:32,p,64{...}"`` -> (name, kwargs)."""
    if "{" in arch:
        name, rest = arch.split("{", 1)
        return name, json.loads("{" + rest)
    return arch, {}


# --- accuracy ----------------------------------------------------------------------------------


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, tta_flip: bool = False,
             batch_size: int = 1000) -> tuple[float, torch.Tensor]:
    model.eval()
    probs = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        p = model(xb).softmax(dim=1)
        if tta_flip:
            p = (p + model(xb.flip(-1)).softmax(dim=1)) / 2
        probs.append(p)
    p = torch.cat(probs)
    return float((p.argmax(dim=1) == y).float().mean()), p


def cmd_accuracy(args) -> None:
    from polymodal.train.schedule import build_optimizer, lr_at, set_lr

    torch.set_num_threads(args.threads)
    tx, ty, vx, vy, sx, sy = load_fashion()
    if args.train_rows:
        tx, ty = tx[:args.train_rows], ty[:args.train_rows]
    name, kwargs = parse_arch(args.arch)
    torch.manual_seed(args.seed)
    model = build(name, **kwargs)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.999))
    steps_per_epoch = len(tx) // args.batch_size
    planned = int(args.epochs * steps_per_epoch)
    warmup = int(args.warmup * planned) if args.warmup < 1 else int(args.warmup)
    g = torch.Generator().manual_seed(args.seed)
    ema = None
    if args.ema:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema))
    step, start, train_s = 0, time.perf_counter(), 0.0
    while step < planned:
        order = torch.randperm(len(tx), generator=g)
        for i in range(steps_per_epoch):
            if step >= planned:
                break
            t0 = time.process_time()
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            xb = augment_batch(tx[idx], args.shift_px, args.hflip, g)
            if args.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            set_lr(opt, lr_at(step, base_lr=args.lr, warmup_steps=warmup, planned_steps=planned,
                              min_lr_ratio=args.min_lr_ratio))
            model.train()
            loss = F.cross_entropy(model(xb), ty[idx], label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip:
                nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            train_s += time.process_time() - t0
            if step % 100 == 0:
                print(f"step {step}/{planned} loss {loss.item():.3f} "
                      f"{step * args.batch_size / train_s:.0f} img/s", flush=True)
    final = model
    if ema is not None:
        final = ema.module
        if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
            # EMA of BN running stats is handled by AveragedModel(use_buffers=False) poorly;
            # copy the live buffers, which is what a running mean already averages.
            for b_ema, b in zip(final.buffers(), model.buffers(), strict=True):
                b_ema.copy_(b)
    val_acc, _ = accuracy(final, vx, vy)
    test_acc, _ = accuracy(final, sx, sy)
    rec = {"kind": "accuracy", **{k: v for k, v in vars(args).items() if k != "func"},
           "macs": count_macs(build(name, **kwargs)), "val_acc": round(val_acc, 4),
           "test_acc": round(test_acc, 4), "train_cpu_s": round(train_s, 1),
           "images_per_s": round(step * args.batch_size / train_s),
           "wall_s": round(time.perf_counter() - start, 1), "load_avg": os.getloadavg()[0]}
    if args.hflip:
        rec["val_acc_tta_flip"] = round(accuracy(final, vx, vy, tta_flip=True)[0], 4)
        rec["test_acc_tta_flip"] = round(accuracy(final, sx, sy, tta_flip=True)[0], 4)
    print(json.dumps(rec), flush=True)
    append_log(rec)


def append_log(rec: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as f:
        f.write(json.dumps(rec) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(required=True)
    s = sub.add_parser("speed")
    s.add_argument("--archs", default="seed;encoder", help="';'-separated; first is the yardstick")
    s.add_argument("--threads", default="1,2")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--steps", type=int, default=15)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--channels-last", action="store_true")
    s.set_defaults(func=cmd_speed)
    t = sub.add_parser("threads")
    t.add_argument("--arch", default="encoder")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--repeats", type=int, default=3)
    t.set_defaults(func=cmd_threads)
    a = sub.add_parser("accuracy")
    a.add_argument("--arch", default="encoder")
    a.add_argument("--epochs", type=float, default=5)
    a.add_argument("--batch-size", type=int, default=128)
    a.add_argument("--lr", type=float, default=3e-3)
    a.add_argument("--weight-decay", type=float, default=0.05)
    a.add_argument("--warmup", type=float, default=0.05, help="fraction (<1) or steps")
    a.add_argument("--min-lr-ratio", type=float, default=0.0)
    a.add_argument("--label-smoothing", type=float, default=0.1)
    a.add_argument("--shift-px", type=int, default=2)
    a.add_argument("--hflip", action="store_true")
    a.add_argument("--clip", type=float, default=1.0)
    a.add_argument("--ema", type=float, default=0.0, help="EMA decay per step; 0 = off")
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--channels-last", action="store_true")
    a.add_argument("--train-rows", type=int, default=0)
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(func=cmd_accuracy)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
