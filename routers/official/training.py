"""The reference code's training loop, shared by its torch recipes (docs/official.md)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from routers.neural import numerics_context


def train_in_query_batches(
    make_net: Callable[[], nn.Module],
    n: int,
    batch_loss: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
) -> tuple[nn.Module, list[float]]:
    """Seed torch, build the net, then Adam over ``epochs`` passes of one ``randperm`` of the
    ``n`` training items (queries; RM's (query, lambda) rows) in batches of ``batch_size`` (the
    generator is consumed in exactly this order). Returns the net in eval mode and the per-epoch mean training loss."""
    bs = min(int(batch_size), n)
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]), numerics_context():
        torch.manual_seed(int(seed))
        net = make_net()
        opt = torch.optim.Adam(net.parameters(), lr=float(lr), weight_decay=float(weight_decay))
        net.train()
        for _ in range(int(epochs)):
            perm = torch.randperm(n)
            total = 0.0
            for lo in range(0, n, bs):
                idx = perm[lo : lo + bs]
                opt.zero_grad()
                loss = batch_loss(net, idx)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * int(idx.shape[0])
            losses.append(total / n)
    net.eval()
    return net, losses
