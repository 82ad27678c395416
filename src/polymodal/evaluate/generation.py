"""Generator metrics over feature vectors (a judge network's, or raw pixels).

All take ``(N, D)`` float arrays, so the feature space is the caller's choice and the
same code serves judge features, Inception features from a user's local weights, or
pixels. Each is cheap enough to run inside training on a CPU.

References:
- Fréchet distance: Heusel et al. 2017, "GANs trained by a two time-scale update rule", Eq. 6.
- KID: Bińkowski et al. 2018, "Demystifying MMD GANs", unbiased MMD² with the cubic
  polynomial kernel k(x, y) = (xᵀy / D + 1)³, averaged over subsets.
- Precision/recall: Kynkäänniemi et al. 2019, "Improved precision and recall metric", §3
  (k-NN hyperspheres around each real / generated feature).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

# Reports flag FD, KID and precision/recall on fewer images per set than this: FD is biased
# upwards by a term that shrinks only as 1/n (Chong & Forsyth 2020, "Effectively unbiased
# FID", §3), and KID's and the k-NN metrics' spread across draws is then as large as the
# differences between models.
MIN_IMAGES_FOR_DISTRIBUTION_METRICS = 100


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½)  (Heusel et al. 2017, Eq. 6)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        # Near-singular covariances: regularise as in the reference FID implementation.
        eps = 1e-6 * np.eye(cov_a.shape[0])
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    return max(value, 0.0)


def kernel_inception_distance(
    a: np.ndarray, b: np.ndarray, *, num_subsets: int = 50, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Mean and std of unbiased MMD² over random subsets (Bińkowski et al. 2018, Eq. 4)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    dim = a.shape[1]
    values = []
    for _ in range(num_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = (x @ x.T / dim + 1) ** 3
        kyy = (y @ y.T / dim + 1) ** 3
        kxy = (x @ y.T / dim + 1) ** 3
        mmd = (
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean()
        )
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def _pairwise_sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T
    return np.maximum(d, 0.0)


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    d = _pairwise_sq_dists(x, x)
    # Column 0 of each sorted row is the point itself (distance 0).
    return np.sqrt(np.sort(d, axis=1)[:, min(k, len(x) - 1)])


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = 3) -> dict[str, float]:
    """k-NN precision (fakes inside the real manifold) and recall (reals inside the fake one)."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    real_r = _knn_radii(real, k)
    fake_r = _knn_radii(fake, k)
    d_fr = np.sqrt(_pairwise_sq_dists(fake, real))  # (N_fake, N_real)
    precision = float((d_fr <= real_r[None, :]).any(axis=1).mean())
    recall = float((d_fr.T <= fake_r[None, :]).any(axis=1).mean())
    return {"precision": precision, "recall": recall}


def nearest_neighbour_distances(queries: np.ndarray, reference: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
    """Euclidean distance from each query to its nearest reference row."""
    queries = np.asarray(queries, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    out = np.empty(len(queries))
    for i in range(0, len(queries), chunk):
        out[i : i + chunk] = np.sqrt(_pairwise_sq_dists(queries[i : i + chunk], reference).min(axis=1))
    return out


def memorisation(
    samples: np.ndarray, train: np.ndarray, held_out: np.ndarray, *, copy_ratio: float = 1 / 3
) -> dict[str, float]:
    """Do samples sit closer to training images than fresh real images do?

    Compares nearest-training-neighbour distances of samples with those of held-out real
    images. A ratio of medians well below 1, or samples much closer than any held-out
    image, means copying. A sample counts as a near-copy when its distance is below
    ``copy_ratio`` × the held-out images' median distance.
    """
    d_samples = nearest_neighbour_distances(samples, train)
    d_held = nearest_neighbour_distances(held_out, train)
    median_held = float(np.median(d_held))
    return {
        "nn_dist_samples_median": float(np.median(d_samples)),
        "nn_dist_heldout_median": median_held,
        "nn_dist_ratio": float(np.median(d_samples) / max(median_held, 1e-12)),
        "near_copies": int((d_samples < copy_ratio * median_held).sum()),
        "near_copy_fraction": float((d_samples < copy_ratio * median_held).mean()),
    }
