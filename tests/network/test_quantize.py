import torch

from codec.network.quantize import ResidualVQ, VectorQuantizer, kmeans


def test_straight_through_gradient_is_identity():
    rvq = ResidualVQ(dim=8, n_q=3, codebook_size=16)
    latents = torch.randn(2, 8, 20, requires_grad=True)
    result = rvq(latents)
    weights = torch.randn_like(latents)
    (result.quantized * weights).sum().backward()
    assert torch.equal(latents.grad, weights)


def test_kmeans_init_places_codewords_on_the_data():
    centres = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [0.0, -5.0], [8.0, -8.0]])
    points = centres.repeat_interleave(50, dim=0) + 0.01 * torch.randn(200, 2)
    vq = VectorQuantizer(2, 4, kmeans_iters=20)
    vq.train()
    vq(points.t().unsqueeze(0))
    distance_to_nearest_centre = torch.cdist(vq.embed, centres).min(dim=1).values
    assert distance_to_nearest_centre.max() < 0.1
    assert bool(vq.initialized)


def test_kmeans_finds_separated_clusters():
    centres = torch.tensor([[0.0, 10.0], [10.0, 0.0]])
    points = centres.repeat_interleave(30, dim=0)
    found, counts = kmeans(points, 2, iters=5)
    assert sorted(counts.tolist()) == [30, 30]
    assert torch.cdist(found, centres).min(dim=1).values.max() < 1e-5


def test_unused_code_is_revived_with_an_encoder_output():
    vq = VectorQuantizer(2, 4, dead_code_threshold=0.5, decay=0.5)
    vq.train()
    data = torch.randn(1, 2, 64)
    vq(data)  # k-means init
    far_away = torch.tensor([1000.0, 1000.0])
    vq.embed[3] = far_away
    vq.embed_sum[3] = far_away * 0.01
    vq.cluster_size[3] = 0.01  # usage under the threshold: dead
    _, _, stats = vq(data)
    assert stats["revived"] >= 1
    revived = vq.embed[3]
    assert torch.cdist(revived[None], data[0].t()).min() < 1e-5
    assert vq.cluster_size[3] >= 0.5


def test_dropout_never_exceeds_n_q_and_sometimes_uses_all():
    rvq = ResidualVQ(dim=4, n_q=4, codebook_size=8, dropout=1.0)
    rvq.train()
    seen = set()
    for _ in range(30):
        items = rvq._items_n_q(16, 3, torch.device("cpu"))
        seen.update(items.tolist())
        assert items.max() <= 3 and items.min() >= 1
    assert 3 in seen and 1 in seen


def test_dropout_masks_unused_codebooks_in_the_output():
    rvq = ResidualVQ(dim=4, n_q=4, codebook_size=8, dropout=1.0)
    rvq.train()
    latents = torch.randn(64, 4, 5)
    rvq(latents)  # initialise every codebook
    for layer in rvq.layers:  # freeze the codebooks so both passes see the same ones
        layer.decay, layer.dead_code_threshold = 1.0, 0.0
    rvq.eval()
    one = rvq.decode(rvq.encode(latents, 1))
    four = rvq.decode(rvq.encode(latents, 4))
    rvq.train()
    torch.manual_seed(1)
    items = rvq._items_n_q(64, 4, torch.device("cpu"))
    torch.manual_seed(1)
    result = rvq(latents)
    for i in range(64):
        expected = one[i] if items[i] == 1 else four[i] if items[i] == 4 else None
        if expected is not None:
            assert torch.allclose(result.quantized[i], expected, atol=1e-4)


def test_n_q_out_of_range_is_a_clear_error():
    rvq = ResidualVQ(dim=4, n_q=2, codebook_size=8)
    for bad in (0, 3):
        try:
            rvq.encode(torch.randn(1, 4, 3), bad)
        except ValueError as error:
            assert "n_q must be between 1 and 2" in str(error)
        else:
            raise AssertionError("expected ValueError")


def test_metrics_report_usage_perplexity_and_revived_per_codebook():
    rvq = ResidualVQ(dim=4, n_q=2, codebook_size=8)
    rvq.train()
    metrics = rvq(torch.randn(2, 4, 50)).metrics
    for index in range(2):
        assert 0 < metrics[f"codebook/{index}/usage"] <= 1
        assert 1 <= metrics[f"codebook/{index}/perplexity"] <= 8
        assert f"codebook/{index}/revived" in metrics


# Two gloo processes, each with vectors of its own (rank 0 near +10, rank 1 near -10):
# k-means and revival must draw on both, and leave both ranks with the same codebook.
TWO_RANKS = """
import sys
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from codec.network.quantize import VectorQuantizer

def worker(rank, folder):
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                            world_size=2)
    torch.manual_seed(rank)
    sign = 1.0 if rank == 0 else -1.0
    vectors = sign * 10 + torch.randn(1, 2, 256)
    vq = VectorQuantizer(2, 64, kmeans_iters=3).train()
    vq(vectors)
    initial = vq.embed.clone()
    vq.cluster_size[1:] = 0  # all codes but one dead
    vq._revive_dead_codes(vectors[0].T.contiguous())
    torch.save({"initial": initial, "revived": vq.embed.clone()}, f"{folder}/rank{rank}.pt")
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(worker, args=(sys.argv[1],), nprocs=2)
"""


def test_two_ranks_build_and_revive_codebooks_from_both_ranks_vectors(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "two_ranks.py").write_text(TWO_RANKS)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run([sys.executable, str(tmp_path / "two_ranks.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    for name in ("initial", "revived"):
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        first = ranks[0][name][:, 0]
        assert (first > 5).any() and (first < -5).any(), name  # both ranks' vectors
