"""Probe: which objective, sampler, step count and guidance for the CPU generator?

Trains the class-conditional :class:`polymodal.models.unet.UNet` on a fixed number of
training images on 8x8 digits (sklearn) and 28x28 Fashion-MNIST (Debian
``dataset-fashion-mnist``) and scores samples with judges trained on real data:

- digits: an SVC on real digits -> conditional accuracy (generated image classified as
  the class it was conditioned on).
- fashion: a small CNN trained ~1 CPU-minute on real data (0.88 test accuracy) ->
  conditional accuracy, and the Frechet distance (FD) in its penultimate features
  divided by the real-vs-real floor at the same sample count (10.1 at n = 500).

Usage (the machine was shared, so ``--threads 1`` and budgets in images, not seconds):

    .venv/bin/python bench/generator_core_probe.py --part digits --threads 1
    .venv/bin/python bench/generator_core_probe.py --part fashion --threads 1
    .venv/bin/python bench/generator_core_probe.py --part fashion --threads 1 \
        --grid interval --load /tmp/generator_probe_fashion_logit_normal.pt
    .venv/bin/python bench/generator_core_probe.py --part speed --threads 1

This is a benchmark, not a test. Its own tiny loop (AdamW 1e-3, batch 64, warm-up +
cosine to 1e-4, condition dropout 0.1, EMA with a half-life of 5k images) stands in for
polymodal.train.

RESULTS (2026-11-28, 2 shared cores, load average 5-11; 40k training images per model,
about 3 CPU-minutes at 28x28; 500 samples):

- digits: logit-normal and uniform t both reach conditional accuracy 0.95 unguided and
  1.00 with guidance >= 2 at 8 Euler steps: too easy to separate anything.
- fashion, the full tables are in polymodal/models/flow.py (time sampling) and
  polymodal/models/samplers.py (sampler, steps, guidance, interval). In short:
  * time sampling: uniform t scores higher accuracy at equal guidance, logit-normal a
    lower FD every time; logit-normal with guidance 3 beats uniform with guidance 2 on
    both -> logit-normal stays the default.
  * Heun with 4 steps (7 evaluations) matches Euler with 16 (FD/floor 4.54 vs 4.61).
  * Time shift toward noise (2.0) or toward data (0.5) is worse than uniform steps.
  * Guidance 2-3 lifts conditional accuracy 0.64 -> 0.82-0.86 and halves FD/floor.
  * Guidance only near data (t < 0.7) loses most of the accuracy gain (0.86 -> 0.78):
    class identity is decided near noise. Guidance only for t >= 0.3 keeps it
    (Euler 8: 0.84 / 2.93; Heun 4: 0.83 / 2.72) for 12-14 evaluations instead of 32.
  * speed (--part speed, 1 thread, best-of-N process CPU time): one image-evaluation
    of the 0.39M UNet costs 1.38 CPU-ms in channels_last vs 1.73 contiguous (-20%);
    training runs 246 vs 238 images per CPU-second. Base width 12 (0.22M parameters):
    1.09 CPU-ms and 343 images/CPU-s, quality not measured.
- CHOSEN DEFAULTS: rectified flow, logit-normal t (0, 1); Heun, 4 steps, uniform time
  grid; guidance applied for t in [0.3, 1]; channels_last on CPU. That is 12
  evaluations per guided sample, 2.7x fewer than Euler 16 with guidance everywhere at
  about the same accuracy and FD. Measured end to end (batch 250, guidance 3, 1 thread,
  channels_last): 53 guided samples per CPU-second, peak RSS 594 MiB (torch included).
- Not measured (budget): EDM preconditioning, widths other than 16, attention.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gzip
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polymodal.models.flow import drop_conditions, rectified_flow_loss
from polymodal.models.samplers import euler_sample, guided_velocity, heun_sample
from polymodal.models.unet import UNet

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
NUM_CLASSES = 10


# ----------------------------------------------------------------------------- data


def load_digits_data() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn digits as (N, 1, 8, 8) in [-1, 1] and labels (N,)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0 * 2 - 1  # 0..16 -> [-1, 1]
    return x, torch.tensor(d.target, dtype=torch.long)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip): big-endian header of ndim sizes, then uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST ``train``/``t10k`` as (N, 1, 28, 28) in [-1, 1] and labels (N,)."""
    images = _read_idx(FASHION_DIR / f"{split}-images-idx3-ubyte.gz")
    labels = _read_idx(FASHION_DIR / f"{split}-labels-idx1-ubyte.gz")
    x = torch.tensor(images, dtype=torch.float32)[:, None] / 127.5 - 1
    return x, torch.tensor(labels, dtype=torch.long)


# ------------------------------------------------------------------------- training


def train_generator(
    net: UNet,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_images: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    min_lr: float = 1e-4,
    warmup_frac: float = 0.05,
    time_sampling: str = "logit_normal",
    cond_drop_prob: float = 0.1,
    ema_half_life_images: float = 5_000,
    channels_last: bool = False,
    seed: int = 0,
) -> tuple[UNet, dict]:
    """Train on ``num_images`` images (sampled with replacement); returns the EMA net and stats.

    The budget is counted in images, not seconds, because the probe machine was shared
    (load average 5-9 on 2 cores): wall-clock and even process-CPU throughput of the same
    step swung 5-20x between runs, so a time budget would have compared luck. Choices
    that share a network cost the same per image; speed is measured separately.
    """
    gen = torch.Generator().manual_seed(seed)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt).train()
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    # EMA decay per step from a half-life counted in images (Karras et al. 2024, EDM2,
    # Sec. 3.1): after ema_half_life_images images the old weights weigh one half.
    ema_decay = 0.5 ** (batch_size / ema_half_life_images)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    onehot = F.one_hot(y, NUM_CLASSES).float()
    num_steps = num_images // batch_size
    start, losses = time.process_time(), []
    for step in range(num_steps):
        # Warm-up then cosine to min_lr (fractions of the budget).
        frac = step / num_steps
        cosine = min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * frac))
        for group in opt.param_groups:
            group["lr"] = cosine * min(1.0, frac / warmup_frac)
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=gen)
        cond, _ = drop_conditions(onehot[idx], cond_drop_prob, gen)
        loss = rectified_flow_loss(
            net,
            x[idx].contiguous(memory_format=fmt),
            cond=cond,
            generator=gen,
            time_sampling=time_sampling,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), net.parameters(), strict=True):
                p_ema.lerp_(p, 1 - ema_decay)
        losses.append(loss.item())
    cpu_s = time.process_time() - start
    stats = {
        "steps": num_steps,
        "img/cpu_s": num_steps * batch_size / cpu_s,
        "final_loss": float(np.mean(losses[-100:])),
    }
    return ema, stats


class CountingNet(nn.Module):
    """Wraps a network and counts the images it is run on (cond + uncond passes)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.images = net, 0

    def forward(self, x, *args):
        self.images += x.shape[0]
        return self.net(x, *args)


def seconds_per_image_forward(net: UNet, *, batch_size: int = 250, repeats: int = 5) -> float:
    """Seconds of one network evaluation per image, best of ``repeats`` (robust to load)."""
    size, channels = net.config()["image_size"], net.config()["image_channels"]
    x, t = torch.randn(batch_size, channels, size, size), torch.rand(batch_size)
    cond = torch.zeros(batch_size, net.config()["cond_dim"])
    best = float("inf")
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            net(x, t, cond)
            best = min(best, time.perf_counter() - start)
    return best / batch_size


def sample_classes(
    net: UNet,
    labels: torch.Tensor,
    *,
    method: str = "euler",
    num_steps: int = 16,
    shift: float = 1.0,
    guidance: float = 1.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    batch_size: int = 250,
    seed: int = 1,
) -> tuple[torch.Tensor, float]:
    """Class-conditional samples for ``labels``.

    Returns the images and the network evaluations per sample (cond + uncond passes).
    """
    counter = CountingNet(net)
    sampler = {"euler": euler_sample, "heun": heun_sample}[method]
    size, channels = net.config()["image_size"], net.config()["image_channels"]
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(labels.shape[0], channels, size, size, generator=gen)
    out = []
    for i in range(0, labels.shape[0], batch_size):
        cond = F.one_hot(labels[i : i + batch_size], NUM_CLASSES).float()
        velocity_fn = functools.partial(
            guided_velocity,
            counter,
            cond=cond,
            guidance=guidance,
            guidance_interval=guidance_interval,
        )
        x = noise[i : i + batch_size]
        out.append(sampler(velocity_fn, x, num_steps=num_steps, shift=shift))
    return torch.cat(out).clamp(-1, 1), counter.images / labels.shape[0]


# --------------------------------------------------------------------------- judges


class DigitsJudge:
    """An RBF SVC on real 8x8 digits (~99% accuracy on held-out real digits)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        from sklearn.svm import SVC

        self.svc = SVC(C=10.0, gamma="scale").fit(x.flatten(1).numpy(), y.numpy())

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        pred = self.svc.predict(images.flatten(1).numpy())
        return float((pred == labels.numpy()).mean())


class FashionJudgeNet(nn.Module):
    """Small CNN; ``features`` (B, 128) feed the Frechet distance."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 14, 14)
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, 7, 7)
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),  # (B, 128)
        )
        self.head = nn.Linear(128, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class FashionJudge:
    """Trains :class:`FashionJudgeNet` for ``num_steps`` batches of 128 real images.

    (~1 CPU-minute on an idle 2-core machine; ~0.89 test accuracy.)
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, num_steps: int = 500):
        torch.manual_seed(0)
        self.net = FashionJudgeNet()
        opt = torch.optim.Adam(self.net.parameters(), lr=2e-3)
        for _ in range(num_steps):
            idx = torch.randint(0, x.shape[0], (128,))
            loss = F.cross_entropy(self.net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.net.eval()

    @torch.no_grad()
    def _run(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.cat([self.net.features(b) for b in images.split(500)])
        return feats, self.net.head(feats).argmax(1)

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        return float((self._run(images)[1] == labels).float().mean())

    def frechet(self, a: torch.Tensor, b: torch.Tensor) -> float:
        return frechet_distance(self._run(a)[0].double().numpy(), self._run(b)[0].double().numpy())


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) (Heusel et al. 2017, "FID")."""
    from scipy import linalg

    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


# ---------------------------------------------------------------------------- probes


SAMPLER_GRID = [
    # (method, num_steps, shift, guidance, guidance_interval)
    ("euler", 8, 1.0, 1.0, (0.0, 1.0)),
    ("euler", 16, 1.0, 1.0, (0.0, 1.0)),
    ("heun", 4, 1.0, 1.0, (0.0, 1.0)),
    ("euler", 8, 2.0, 1.0, (0.0, 1.0)),
    ("euler", 16, 1.0, 1.5, (0.0, 1.0)),
    ("euler", 16, 1.0, 2.0, (0.0, 1.0)),
    ("euler", 16, 1.0, 3.0, (0.0, 1.0)),
    ("euler", 16, 1.0, 3.0, (0.0, 0.7)),
    ("euler", 8, 1.0, 2.0, (0.0, 0.7)),
    ("euler", 8, 1.0, 3.0, (0.0, 0.7)),
    ("heun", 4, 1.0, 2.0, (0.0, 0.7)),
]

# Second sweep around the winners of the first: guidance intervals (Kynkaenniemi et al.
# 2024 guide for EDM sigma in (0.28, 5.42], i.e. t = sigma / (1 + sigma) in (0.22, 0.84);
# the first sweep showed class identity needs guidance near noise, so also (0.3, 1.0)),
# Heun, and a time shift toward data.
INTERVAL_GRID = [
    ("euler", 8, 1.0, 2.0, (0.22, 0.84)),
    ("euler", 8, 1.0, 3.0, (0.22, 0.84)),
    ("euler", 8, 1.0, 2.0, (0.3, 1.0)),
    ("euler", 8, 1.0, 3.0, (0.3, 1.0)),
    ("heun", 4, 1.0, 3.0, (0.0, 0.7)),
    ("heun", 4, 1.0, 2.0, (0.3, 1.0)),
    ("heun", 4, 1.0, 3.0, (0.3, 1.0)),
    ("euler", 8, 0.5, 3.0, (0.3, 1.0)),
]
# A few guided settings to compare models (e.g. the uniform-time one) where they are used.
COMPARE_GRID = [
    ("euler", 16, 1.0, 2.0, (0.0, 1.0)),
    ("euler", 8, 1.0, 2.0, (0.0, 0.7)),
    ("heun", 4, 1.0, 2.0, (0.0, 0.7)),
]
GRIDS = {"main": SAMPLER_GRID, "interval": INTERVAL_GRID, "compare": COMPARE_GRID}


def _row(name: str, cells: dict) -> str:
    return f"{name:<40}" + "".join(f"{k}={v:<9.4g}" for k, v in cells.items())


def _probe(args, *, x, y, image_size, score) -> None:
    """Train one model per time sampling, then sweep the sampler grid on the first.

    ``score(images, labels)`` returns a dict of judge metrics. ``est_img/s`` is
    1 / (network evaluations per sample x best-of-5 seconds per image-evaluation at
    batch 250), i.e. the sampling speed on this machine when it is not contended.
    """
    labels = torch.arange(NUM_CLASSES).repeat(args.num_samples // NUM_CLASSES)
    models = {}
    for ts_name in [] if args.load else args.time_samplings:
        torch.manual_seed(0)
        net = UNet.sized_for(image_size, 1, NUM_CLASSES, base_channels=args.base_channels)
        ema, st = train_generator(net, x, y, num_images=args.train_images, time_sampling=ts_name)
        imgs, _ = sample_classes(ema, labels, num_steps=16)
        print(_row(f"train {ts_name} b{args.base_channels}", {**st, **score(imgs, labels)}))
        models[ts_name] = ema
        torch.save(
            {"config": ema.config(), "state": ema.state_dict()},
            f"/tmp/generator_probe_{args.part}_{ts_name}.pt",
        )
    if args.load:
        saved = torch.load(args.load)
        ema = UNet(**saved["config"]).eval()
        ema.load_state_dict(saved["state"])
    else:
        ema = models[args.time_samplings[0]]
    sec_per_image = seconds_per_image_forward(ema)
    print(f"one evaluation: {1e3 * sec_per_image:.3f} ms/image (best of 5, batch 250)")
    for method, steps, shift, g, interval in GRIDS[args.grid]:
        imgs, nfe = sample_classes(
            ema,
            labels,
            method=method,
            num_steps=steps,
            shift=shift,
            guidance=g,
            guidance_interval=interval,
        )
        name = f"{method}{steps} s{shift} g{g} {interval}"
        cells = {**score(imgs, labels), "nfe": nfe, "est_img/s": 1 / (nfe * sec_per_image)}
        print(_row(name, cells), flush=True)


def probe_digits(args) -> None:
    x, y = load_digits_data()
    judge = DigitsJudge(x, y)
    print(f"digits: judge on real = {judge.accuracy(x, y):.3f}")

    def score(imgs, labels):
        return {"acc": judge.accuracy(imgs, labels)}

    _probe(args, x=x, y=y, image_size=8, score=score)


def probe_fashion(args) -> None:
    x_train, y_train = load_fashion("train")
    x_test, y_test = load_fashion("t10k")
    judge = FashionJudge(x_train, y_train, num_steps=args.judge_steps)
    n = args.num_samples
    real_a, real_b = x_test[:n], x_train[:n]
    floor = judge.frechet(real_a, real_b)
    print(
        f"fashion: judge test acc = {judge.accuracy(x_test, y_test):.3f}, "
        f"real-vs-real FD floor (n={n}) = {floor:.3f}"
    )

    def score(imgs, labels):
        return {
            "acc": judge.accuracy(imgs, labels),
            "FD/floor": judge.frechet(imgs, real_a) / floor,
        }

    _probe(args, x=x_train, y=y_train, image_size=28, score=score)


def probe_speed(args) -> None:
    """CPU cost of a training image and of one image-evaluation, 28x28 UNet.

    Counted in process CPU time, best of several tries, because the machine is shared;
    with ``--threads 1`` that is the single-core cost (2 idle cores: about half the wall
    time). Compares the memory formats and two widths.
    """
    for fmt_name, fmt in (
        ("contiguous", torch.contiguous_format),
        ("channels_last", torch.channels_last),
    ):
        for base in (12, 16) if args.base_channels is None else (args.base_channels,):
            torch.manual_seed(0)
            net = UNet.sized_for(28, 1, NUM_CLASSES, base_channels=base).to(memory_format=fmt)
            opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
            x = torch.randn(64, 1, 28, 28).contiguous(memory_format=fmt)
            cond = F.one_hot(torch.arange(64) % NUM_CLASSES, NUM_CLASSES).float()
            best_train = float("inf")
            for _ in range(6):
                start = time.process_time()
                loss = rectified_flow_loss(net, x, cond=cond)
                opt.zero_grad()
                loss.backward()
                opt.step()
                best_train = min(best_train, time.process_time() - start)
            net.eval()
            xs = torch.randn(250, 1, 28, 28).contiguous(memory_format=fmt)
            best_eval = float("inf")
            with torch.no_grad():
                for _ in range(4):
                    start = time.process_time()
                    net(xs, torch.rand(250), cond[:1].expand(250, -1))
                    best_eval = min(best_eval, time.process_time() - start)
            params = sum(p.numel() for p in net.parameters())
            print(
                _row(
                    f"{fmt_name} base{base} ({params} params)",
                    {"train_img/cpu_s": 64 / best_train, "cpu_ms/img_eval": 1e3 * best_eval / 250},
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["digits", "fashion", "speed"], required=True)
    parser.add_argument(
        "--train-images", type=int, default=40_000, help="training images per model"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--judge-steps", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--base-channels", type=int, default=None, help="None: UNet.sized_for")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="main")
    parser.add_argument("--load", help="sweep a model saved by an earlier run; no training")
    parser.add_argument("--time-samplings", nargs="+", default=["logit_normal", "uniform"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"digits": probe_digits, "fashion": probe_fashion, "speed": probe_speed}[args.part](args)


if __name__ == "__main__":
    main()
