"""The reference DCN V2 in plain PyTorch, for `benchmarks/trainer_speed.py` (runs in its own venv).

Same shapes as trainer/model.py: 26 categorical tables and 13 numeric vectors of dim 10 (39 fields),
3 full-rank cross layers x_{l+1} = x0 ⊙ (W x_l + b) + x_l beside a 500-500-500 ReLU DNN with
dropout 0.1, one logit, BCE with logits plus embedding L2 1e-5, gradient clipping at global norm 10.
Modes:
- fp32 / bf16 (autocast): dense embedding gradients, L2 on the whole table, Adam (every row each step);
- sparse fp32 / sparse bf16: sparse embedding gradients, L2 on the batch's rows, SparseAdam on the
  tables + Adam on the rest (as our `lazy_adam` with `embedding_regularization=batch`).
Prints one JSON object: examples/s per mode (median over round-robin rounds).
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch import nn


class DCNV2(nn.Module):
    def __init__(self, rows_per_field: int, fields: int = 26, numeric: int = 13, dim: int = 10, sparse: bool = False):
        super().__init__()
        self.table = nn.Embedding(rows_per_field * fields, dim, sparse=sparse)
        nn.init.normal_(self.table.weight, std=1e-4)
        self.numeric = nn.Parameter(torch.randn(numeric, dim) * 1e-4)
        self.register_buffer("offsets", torch.arange(fields) * rows_per_field)
        width = (fields + numeric) * dim
        self.cross = nn.ModuleList(nn.Linear(width, width) for _ in range(3))
        layers, fan_in = [], width
        for units in (500, 500, 500):
            layers += [nn.Linear(fan_in, units), nn.ReLU(), nn.Dropout(0.1)]
            fan_in = units
        self.dnn = nn.Sequential(*layers)
        self.logit = nn.Linear(width + fan_in, 1)

    def forward(self, ids: torch.Tensor, values: torch.Tensor):
        """(logits, L2 1e-5 on the table: whole table when dense, the batch's rows when sparse)."""
        categorical = self.table(ids + self.offsets)                       # [B, 26, d]
        table = categorical if self.table.sparse else self.table.weight
        l2 = 1e-5 * (table.pow(2).sum() + self.numeric.pow(2).sum())
        numeric = values.unsqueeze(-1) * self.numeric                      # [B, 13, d]
        x0 = torch.cat([numeric, categorical], dim=1).flatten(1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.logit(torch.cat([x, self.dnn(x0)], dim=1)).squeeze(1), l2


def make_step(mode: str, rows_per_field: int, batch):
    sparse = mode.startswith("sparse")
    bf16 = mode.endswith("bf16")
    torch.manual_seed(0)
    model = DCNV2(rows_per_field, sparse=sparse)
    if sparse:
        dense_params = [p for n, p in model.named_parameters() if n != "table.weight"]
        optimizers = [torch.optim.SparseAdam([model.table.weight], lr=1e-3), torch.optim.Adam(dense_params, lr=1e-3)]
    else:
        optimizers = [torch.optim.Adam(model.parameters(), lr=1e-3)]
    loss_fn = nn.BCEWithLogitsLoss()
    ids, values, labels = batch

    def step():
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, l2 = model(ids, values)
        loss = loss_fn(logits.float(), labels) + l2.float()
        loss.backward()
        if not sparse:  # clip_grad_norm_ does not take sparse gradients
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        else:
            nn.utils.clip_grad_norm_([p for p in model.parameters() if p is not model.table.weight], 10.0)
        for optimizer in optimizers:
            optimizer.step()
        return loss

    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--rows-per-field", type=int, default=85_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, required=True, help="intra- and inter-op threads (as TensorFlow's)")
    parser.add_argument("--modes", default="fp32,bf16,sparse_fp32,sparse_bf16")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.batch_size
    batch = (torch.from_numpy(np.minimum(rng.zipf(1.2, (n, 26)) - 1, args.rows_per_field - 1)).long(),
             torch.from_numpy(np.log1p(rng.exponential(5.0, (n, 13))).astype(np.float32)),
             torch.from_numpy((rng.random(n) < 0.25).astype(np.float32)))
    steps = {mode: make_step(mode, args.rows_per_field, batch) for mode in args.modes.split(",")}
    for step in steps.values():
        step(), step()
    seconds = {mode: [] for mode in steps}
    for _ in range(args.rounds):
        for mode, step in steps.items():
            step()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            seconds[mode].append((time.perf_counter() - start) / args.steps)
    print(json.dumps({"torch": torch.__version__, "threads": [torch.get_num_threads(), torch.get_num_interop_threads()],
                      "examples_per_s": {m: n / statistics.median(v) for m, v in seconds.items()}}))


if __name__ == "__main__":
    main()
