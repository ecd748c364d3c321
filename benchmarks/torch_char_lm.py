"""The character-level GPT trained by wsekern.nn and by PyTorch from the same initial
weights, on the same batches, with the same schedule: validation loss and tokens/s.

    pip install torch==2.13.0     # for comparison only; never a wsekern dependency
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/torch_char_lm.py --steps 3000

The model (both): 2 layers, d_model 128, 4 heads, context 64, MLP 512 with exact GELU,
pre-LayerNorm (eps 1e-5), learned positions, untied head. AdamW (betas 0.9/0.999, eps 1e-7,
weight decay 0.1 on every parameter, as Keras applies it), lr 1e-3 after 100 linear warm-up
steps, then cosine decay to 0; batch 32; one thread each.
"""
import argparse
import math
import time

import torch

import wsekern as wk
from wsekern import nn
from wsekern.bench_train import torch_gpt
from wsekern.nn.models import GPT, GPTConfig


def lr_at(step, lr, warmup, total):
    if step < warmup:
        return lr * step / warmup
    t = min(step - warmup, total - warmup) / max(total - warmup, 1)
    return lr * 0.5 * (1 + math.cos(math.pi * t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tok, train_ids, val_ids = wk.data.load_text()
    c = GPTConfig(vocab_size=tok.vocab_size, context=64, n_layer=2, n_head=4, d_model=128,
                  mlp_dim=512)
    nn.utils.set_random_seed(0)
    ours = GPT(c)
    schedule = nn.optimizers.CosineDecay(0.0, args.steps - args.warmup, warmup_target=args.lr,
                                         warmup_steps=args.warmup)
    ours.compile(nn.optimizers.AdamW(schedule, weight_decay=0.1))
    theirs = torch_gpt(torch, c)
    theirs.load_wsekern(ours.get_weights())
    opt = torch.optim.AdamW(theirs.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-7,
                            weight_decay=0.1)
    xs, ys = wk.data.lm_windows(train_ids, 64, args.steps * args.batch, seed=0)
    vx, vy = wk.data.lm_windows(val_ids, 64, 20 * args.batch, seed=1)
    from threadpoolctl import threadpool_limits
    times = {"wsekern": 0.0, "torch": 0.0}
    with threadpool_limits(1):
        for step in range(args.steps):
            rows = slice(step * args.batch, (step + 1) * args.batch)
            xb, yb = xs[rows], ys[rows]
            t0 = time.perf_counter()
            ours.train_on_batch(xb, yb)
            times["wsekern"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for g in opt.param_groups:
                g["lr"] = lr_at(step, args.lr, args.warmup, args.steps)
            opt.zero_grad()
            logits = theirs(torch.from_numpy(xb))
            torch.nn.functional.cross_entropy(logits.reshape(-1, c.vocab_size),
                                              torch.from_numpy(yb).reshape(-1)).backward()
            opt.step()
            times["torch"] += time.perf_counter() - t0
            if (step + 1) % 500 == 0 or step == args.steps - 1:
                ours_val = ours.evaluate(vx, vy, batch_size=args.batch, verbose=0)
                with torch.no_grad():
                    lt = theirs(torch.from_numpy(vx))
                    torch_val = float(torch.nn.functional.cross_entropy(
                        lt.reshape(-1, c.vocab_size), torch.from_numpy(vy).reshape(-1)))
                tokens = (step + 1) * args.batch * 64
                print(f"step {step + 1:5d}  val loss wsekern {ours_val:.4f}  "
                      f"torch {torch_val:.4f}  "
                      f"diff {ours_val - torch_val:+.4f}  tokens/s wsekern "
                      f"{tokens / times['wsekern']:,.0f}  torch {tokens / times['torch']:,.0f}  "
                      f"ratio {times['torch'] / times['wsekern']:.2f}", flush=True)


if __name__ == "__main__":
    main()
