"""Vector quantisation: an EMA codebook and the residual stack built from it.

Shapes: latents ``[B, D, T]``; codes ``[B, n_q, T]`` (int64);
quantised latents ``[B, D, T]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from einops import rearrange
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks so that every rank applies the same codebook update."""
    if _distributed():
        dist.all_reduce(tensor)
    return tensor


def _broadcast(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's tensor on every rank (for choices drawn at random, which differ between
    ranks even from the same candidates)."""
    if _distributed():
        dist.broadcast(tensor, src=0)
    return tensor


# Candidate vectors gathered from all ranks for k-means and revival, at most this many in
# all: each rank sends an equal share, so memory stays bounded on any number of ranks.
MAX_GATHERED_VECTORS = 1 << 16


def _gathered(vectors: torch.Tensor) -> torch.Tensor:
    """The vectors of every rank (each rank's share drawn at random when there are more
    than ``MAX_GATHERED_VECTORS`` in all), in rank order, the same on every rank; on one
    process, ``vectors``. Every rank must call it at the same step."""
    if not _distributed():
        return vectors
    world = dist.get_world_size()
    share = max(1, MAX_GATHERED_VECTORS // world)
    mine = vectors if vectors.shape[0] <= share else _sample_rows(vectors, share)
    count = torch.tensor([mine.shape[0]], device=vectors.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    # all_gather moves tensors of one shape: pad each rank's share to the longest.
    padded = vectors.new_zeros(int(max(counts)), vectors.shape[1])
    padded[:mine.shape[0]] = mine
    pieces = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(pieces, padded)
    return torch.cat([piece[:int(n)] for piece, n in zip(pieces, counts, strict=True)])


def _sample_rows(vectors: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows of ``vectors`` drawn at random (with replacement if too few)."""
    n = vectors.shape[0]
    if n >= count:
        index = torch.randperm(n, device=vectors.device)[:count]
    else:
        index = torch.randint(0, n, (count,), device=vectors.device)
    return vectors[index]


def _kmeans_plus_plus_seeds(vectors: torch.Tensor, k: int) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each seed is drawn with
    probability proportional to its squared distance from the seeds so far, so
    separated clusters each get one instead of two seeds landing in one cluster."""
    if vectors.shape[0] <= k:
        return _sample_rows(vectors, k)
    seeds = [vectors[torch.randint(0, vectors.shape[0], ())]]
    nearest = (vectors - seeds[0]).pow(2).sum(dim=1)
    for _ in range(k - 1):
        weights = nearest if nearest.sum() > 0 else torch.ones_like(nearest)
        seeds.append(vectors[torch.multinomial(weights, 1)[0]])
        nearest = torch.minimum(nearest, (vectors - seeds[-1]).pow(2).sum(dim=1))
    return torch.stack(seeds)


def kmeans(vectors: torch.Tensor, k: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on ``[N, D]``; returns centroids ``[K, D]`` and cluster sizes ``[K]``."""
    centroids = _kmeans_plus_plus_seeds(vectors, k)
    for _ in range(iters):
        assign = torch.cdist(vectors, centroids).argmin(dim=1)
        counts = torch.bincount(assign, minlength=k).to(vectors.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, vectors)
        # Empty clusters keep their previous centroid.
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None],
                                centroids)
    return centroids, counts


@dataclass
class QuantizedResult:
    """What a quantiser returns.

    quantized: ``[B, D, T]`` with straight-through gradients to the input.
    codes: ``[B, n_q, T]``.
    losses: named scalar losses (``commit``).
    metrics: named scalars for logging (per-codebook usage, perplexity, revived codes).
    """
    quantized: torch.Tensor
    codes: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class VectorQuantizer(nn.Module):
    """One codebook, learned by exponential moving averages rather than gradients.

    k-means on the first training batch places the codewords on the data;
    codes whose EMA usage falls under ``dead_code_threshold`` times the average
    code's usage are replaced by recent encoder outputs (van den Oord et al. 2017;
    Zeghidour et al. 2021). The threshold is relative so that one setting works for
    any batch size and codebook size: an absolute count per step would call most
    codes dead with small CPU batches, or none with large GPU batches.
    """

    def __init__(self, dim: int, codebook_size: int, *, decay: float = 0.99,
                 kmeans_iters: int = 10, dead_code_threshold: float = 0.1,
                 epsilon: float = 1e-5):
        super().__init__()
        self.codebook_size = codebook_size
        self.decay = decay
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.epsilon = epsilon
        # A frozen codebook keeps its codewords: no EMA updates, no revival (fine-tuning).
        self.frozen = False
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("embed", torch.randn(codebook_size, dim) * 0.01)
        self.register_buffer("embed_sum", self.embed.clone())
        self.register_buffer("cluster_size", torch.ones(codebook_size))

    def quantize(self, vectors: torch.Tensor) -> torch.Tensor:
        """Nearest codeword index for each row of ``[N, D]``."""
        # ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2; the first term does not change argmin.
        # 2 e^T is 2 x.e to the bit (doubling is exact), in one product.
        doubled_t, squared_norms = self._search_terms()
        return (vectors @ doubled_t).sub_(squared_norms).argmax(dim=1)

    @torch.inference_mode(False)
    def _search_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``2 e^T`` ``[D, K]`` (contiguous: a row times it is twice as fast as times the
        transposed codebook) and ``||e||^2`` of every codeword, kept until the codebook
        changes: coding frame by frame, making them anew took longer than the search.
        Made outside inference mode, so that training may follow coding."""
        key = (self.embed.data_ptr(), self.embed._version, self.embed.device)
        if getattr(self, "_search_key", None) != key:
            embed = self.embed.detach()
            self._search = (2 * embed.t()).contiguous(), embed.pow(2).sum(dim=1)
            self._search_key = key
        return self._search

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, T]`` -> vectors ``[B, D, T]``."""
        return rearrange(nn.functional.embedding(codes, self.embed), "b t d -> b d t")

    @torch.no_grad()
    def _init_with_kmeans(self, vectors: torch.Tensor) -> None:
        centroids, counts = kmeans(_gathered(vectors), self.codebook_size, self.kmeans_iters)
        centroids = _broadcast(centroids.contiguous())
        counts = _broadcast(counts.contiguous())
        self.embed.copy_(centroids)
        # Keep the true counts: a codeword that k-means left empty (e.g. more codes than
        # vectors in the batch) starts dead and is revived at once, not after the EMA
        # has slowly decayed a made-up count.
        self.embed_sum.copy_(centroids * counts[:, None])
        self.cluster_size.copy_(counts)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, vectors: torch.Tensor, codes: torch.Tensor) -> None:
        onehot_counts = torch.bincount(codes, minlength=self.codebook_size).to(vectors.dtype)
        sums = torch.zeros_like(self.embed).index_add_(0, codes, vectors)
        onehot_counts, sums = _all_reduce_sum(onehot_counts), _all_reduce_sum(sums)
        self.cluster_size.mul_(self.decay).add_(onehot_counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        # Laplace smoothing keeps rarely used codes from dividing by ~0.
        total = self.cluster_size.sum()
        smoothed = ((self.cluster_size + self.epsilon)
                    / (total + self.codebook_size * self.epsilon) * total)
        self.embed.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def _revive_dead_codes(self, vectors: torch.Tensor) -> int:
        average = self.cluster_size.sum() / self.codebook_size
        floor = self.dead_code_threshold * average
        dead = self.cluster_size < floor
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        # n_dead is the same on every rank (the counts are summed over ranks), so every
        # rank gathers here.
        fresh = _broadcast(_sample_rows(_gathered(vectors), n_dead).contiguous())
        self.embed[dead] = fresh
        # Reset the statistics too, or the next EMA step would pull the code back; the
        # average use gives a revived code some steps to attract vectors of its own.
        self.embed_sum[dead] = fresh * average
        self.cluster_size[dead] = average
        return n_dead

    def forward(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Latents ``[B, D, T]`` -> (quantised ``[B, D, T]`` without gradient, codes ``[B, T]``,
        stats). In training mode the codebook is updated from this batch, unless frozen."""
        batch = latents.shape[0]
        vectors = rearrange(latents, "b d t -> (b t) d").detach().float()
        stats = {"revived": 0}
        learning = self.training and not self.frozen
        if learning and not bool(self.initialized):
            self._init_with_kmeans(vectors)
        codes = self.quantize(vectors)
        if learning:
            self._ema_update(vectors, codes)
            stats["revived"] = self._revive_dead_codes(vectors)
        codes = rearrange(codes, "(b t) -> b t", b=batch)
        return self.dequantize(codes).to(latents.dtype), codes, stats


def codebook_usage(codes: torch.Tensor, codebook_size: int) -> tuple[float, float]:
    """(fraction of codewords used, perplexity) of a tensor of codes."""
    counts = torch.bincount(codes.flatten(), minlength=codebook_size).float()
    probs = counts / counts.sum().clamp(min=1)
    entropy = -(probs * probs.clamp(min=1e-12).log()).sum()
    return float((counts > 0).float().mean()), float(entropy.exp())


def check_codes(codes: torch.Tensor, check_n_q, codebook_size: int) -> None:
    """ValueError unless ``codes`` is ``[batch, n_q, frames]`` with a row count
    ``check_n_q`` accepts and every value a code of ``codebook_size``."""
    if codes.dim() != 3:
        raise ValueError(f"codes must be [batch, n_q, frames], got shape {tuple(codes.shape)}")
    check_n_q(codes.shape[1])
    if codes.numel() and (codes.min() < 0 or codes.max() >= codebook_size):
        raise ValueError(f"codes must lie in [0, {codebook_size}), got values in "
                         f"[{int(codes.min())}, {int(codes.max())}]")


class ResidualVQ(nn.Module):
    """A stack of codebooks, each quantising what the previous ones left.

    ``n_q`` may be chosen at call time. With ``dropout > 0`` in training, each item
    uses a random number of codebooks in ``[1, n_q]`` (quantiser dropout,
    Zeghidour et al. 2021), so one model serves every bitrate.
    """

    def __init__(self, *, dim: int, n_q: int, codebook_size: int, decay: float = 0.99,
                 kmeans_iters: int = 10, dead_code_threshold: float = 0.1,
                 dropout: float = 1.0):
        super().__init__()
        self.n_q = n_q
        self.codebook_size = codebook_size
        self.dropout = dropout
        self.layers = nn.ModuleList(
            VectorQuantizer(dim, codebook_size, decay=decay, kmeans_iters=kmeans_iters,
                            dead_code_threshold=dead_code_threshold)
            for _ in range(n_q))

    def check_n_q(self, n_q: int | None) -> int:
        n_q = self.n_q if n_q is None else int(n_q)
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be between 1 and {self.n_q} (codebooks in this model), "
                             f"got {n_q}")
        return n_q

    def _items_n_q(self, batch: int, n_q: int, device: torch.device) -> torch.Tensor:
        """How many codebooks each item uses: ``n_q``, or a random count under dropout."""
        full = torch.full((batch,), n_q, device=device)
        if not (self.training and self.dropout > 0):
            return full
        random_n_q = torch.randint(1, n_q + 1, (batch,), device=device)
        use_random = torch.rand(batch, device=device) < self.dropout
        return torch.where(use_random, random_n_q, full)

    def forward(self, latents: torch.Tensor, n_q: int | None = None) -> QuantizedResult:
        n_q = self.check_n_q(n_q)
        items_n_q = self._items_n_q(latents.shape[0], n_q, latents.device)
        residual = latents
        quantized = torch.zeros_like(latents)
        commit = latents.new_zeros(())
        codes, metrics = [], {}
        for index, layer in enumerate(self.layers[:n_q]):
            layer_q, layer_codes, stats = layer(residual)
            active = (items_n_q > index).to(latents.dtype)[:, None, None]
            # Commitment: pull the encoder towards its codeword (codebook learns by EMA).
            per_item = (residual - layer_q).pow(2).mean(dim=(1, 2))
            commit = commit + (per_item * active[:, 0, 0]).sum() / latents.shape[0]
            quantized = quantized + layer_q * active
            residual = residual - layer_q
            codes.append(layer_codes)
            usage, perplexity = codebook_usage(layer_codes, self.codebook_size)
            metrics[f"codebook/{index}/usage"] = usage
            metrics[f"codebook/{index}/perplexity"] = perplexity
            metrics[f"codebook/{index}/revived"] = float(stats["revived"])
        # Straight-through on the sum, so d(out)/d(latents) is exactly the identity:
        # per-layer estimators leak gradient between codebooks (see audiocraft#207).
        quantized = latents + (quantized - latents).detach()
        metrics["codebooks_used_mean"] = float(items_n_q.float().mean())
        return QuantizedResult(quantized, torch.stack(codes, dim=1), {"commit": commit}, metrics)

    def encode(self, latents: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Latents ``[B, D, T]`` -> codes ``[B, n_q, T]`` (no codebook updates)."""
        n_q = self.check_n_q(n_q)
        batch, frames = latents.shape[0], latents.shape[-1]
        # One vector per row throughout: coding frame by frame, reshaping for every
        # codebook cost as much as its search.
        residual = latents.transpose(1, 2).reshape(batch * frames, latents.shape[1])
        codes = []
        for layer in self.layers[:n_q]:
            layer_codes = layer.quantize(residual.float())
            residual = residual - layer.embed[layer_codes].to(latents.dtype)
            codes.append(layer_codes)
        return torch.stack(codes).reshape(n_q, batch, frames).transpose(0, 1).contiguous()

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, n_q, T]`` -> quantised latents ``[B, D, T]``."""
        check_codes(codes, self.check_n_q, self.codebook_size)
        layers = self.layers[:codes.shape[1]]
        rows = codes.transpose(0, 1).reshape(codes.shape[1], -1)  # [n_q, B * T]
        total = layers[0].embed[rows[0]]
        for layer, layer_codes in zip(layers[1:], rows[1:], strict=True):
            total = total + layer.embed[layer_codes]
        return total.reshape(codes.shape[0], codes.shape[2], total.shape[-1]).transpose(1, 2)
