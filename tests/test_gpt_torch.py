"""The char GPT trained by wsekern.nn and by PyTorch from the same weights on the same
batches (AdamW as benchmarks/torch_char_lm.py sets it): the losses agree step for step and
the validation loss to 1e-4 (skipped without torch). Weights are not compared: Adam's
update of a barely seen token's row is lr * sign of a gradient at rounding level."""
import numpy as np
import pytest

from wsekern import data
from wsekern.bench_train import torch_gpt
from wsekern.nn import optimizers, utils
from wsekern.nn.models import GPT, GPTConfig


@pytest.mark.parametrize("config", [
    dict(context=16, n_layer=2, n_head=4, d_model=32, mlp_dim=64, batch=8, steps=12),
    dict(context=64, n_layer=2, n_head=4, d_model=128, mlp_dim=512, batch=32, steps=3),
])
def test_gpt_trains_as_pytorch_does(config):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    F = torch.nn.functional
    tok, train_ids, val_ids = data.load_text()
    c = GPTConfig(vocab_size=tok.vocab_size, context=config["context"],
                  n_layer=config["n_layer"], n_head=config["n_head"],
                  d_model=config["d_model"], mlp_dim=config["mlp_dim"])
    B, steps = config["batch"], config["steps"]
    utils.set_random_seed(0)
    ours = GPT(c)
    ours.compile(optimizers.AdamW(1e-3, weight_decay=0.1))
    theirs = torch_gpt(torch, c)
    theirs.load_wsekern(ours.get_weights())
    opt = torch.optim.AdamW(theirs.parameters(), lr=1e-3, eps=1e-7, weight_decay=0.1)
    xs, ys = data.lm_windows(train_ids, c.context, steps * B, seed=0)
    vx, vy = data.lm_windows(val_ids, c.context, 2 * B, seed=1)

    def torch_loss(x, y):
        logits = theirs(torch.from_numpy(x))
        return F.cross_entropy(logits.reshape(-1, c.vocab_size),
                               torch.from_numpy(y.astype(np.int64)).reshape(-1))
    for s in range(steps):
        xb, yb = xs[s * B:(s + 1) * B], ys[s * B:(s + 1) * B].astype(np.int64)
        ours_loss = ours.train_on_batch(xb, yb)["loss"]
        opt.zero_grad()
        loss = torch_loss(xb, yb)
        loss.backward()
        opt.step()
        assert abs(ours_loss - float(loss)) < 1e-4, (s, ours_loss, float(loss))
    with torch.no_grad():
        torch_val = float(torch_loss(vx, vy))
    ours_val = ours.evaluate(vx, vy.astype(np.int64), batch_size=B, verbose=0)
    assert abs(ours_val - torch_val) < 1e-4
