"""The char GPT trained by wsekern.nn and by PyTorch from the same weights on the same
batches (AdamW as benchmarks/torch_char_lm.py sets it), skipped without torch: a small GPT's
losses agree step for step and on validation to 1e-4; the benchmark's GPT's first step
(loss and every gradient). Later steps of the big one are not compared step by step: Adam's
first update moves each weight by lr * sign(gradient), and a gradient at rounding level
(a rarely seen token's row) takes either sign in either library."""
import numpy as np
import pytest

from wsekern import data
from wsekern.bench_train import gpt_config, torch_gpt
from wsekern.nn import optimizers, utils
from wsekern.nn.models import GPT, GPTConfig


def _pair(torch, c):
    utils.set_random_seed(0)
    ours = GPT(c)
    ours.compile(optimizers.AdamW(1e-3, weight_decay=0.1))
    theirs = torch_gpt(torch, c)
    theirs.load_wsekern(ours.get_weights())
    opt = torch.optim.AdamW(theirs.parameters(), lr=1e-3, eps=1e-7, weight_decay=0.1)
    return ours, theirs, opt


def _torch_loss(torch, theirs, c, x, y):
    logits = theirs(torch.from_numpy(x))
    return torch.nn.functional.cross_entropy(logits.reshape(-1, c.vocab_size),
                                             torch.from_numpy(y.astype(np.int64)).reshape(-1))


def _torch_grads(theirs):
    """The torch model's gradients in wsekern's weight order (Dense kernels transposed)."""
    out = [theirs.tok.weight.grad, theirs.pos.grad]
    for b in theirs.blocks:
        out += [b.ln1.weight.grad, b.ln1.bias.grad]
        for lin in (b.q, b.k, b.v, b.o):
            out += [lin.weight.grad.T, lin.bias.grad]
        out += [b.ln2.weight.grad, b.ln2.bias.grad]
        for lin in (b.fc, b.proj):
            out += [lin.weight.grad.T, lin.bias.grad]
    out += [theirs.ln_f.weight.grad, theirs.ln_f.bias.grad, theirs.head.weight.grad.T,
            theirs.head.bias.grad]
    return [g.numpy() for g in out]


def test_small_gpt_trains_as_pytorch_does():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    tok, train_ids, val_ids = data.load_text()
    c = GPTConfig(vocab_size=tok.vocab_size, context=16, n_layer=2, n_head=4, d_model=32,
                  mlp_dim=64)
    B, steps = 8, 12
    ours, theirs, opt = _pair(torch, c)
    xs, ys = data.lm_windows(train_ids, c.context, steps * B, seed=0)
    vx, vy = data.lm_windows(val_ids, c.context, 2 * B, seed=1)
    for s in range(steps):
        xb, yb = xs[s * B:(s + 1) * B], ys[s * B:(s + 1) * B].astype(np.int64)
        ours_loss = ours.train_on_batch(xb, yb, return_dict=True)["loss"]
        opt.zero_grad()
        loss = _torch_loss(torch, theirs, c, xb, yb)
        loss.backward()
        opt.step()
        assert abs(ours_loss - float(loss)) < 1e-4, (s, ours_loss, float(loss))
    with torch.no_grad():
        torch_val = float(_torch_loss(torch, theirs, c, vx, vy))
    assert abs(ours.evaluate(vx, vy.astype(np.int64), batch_size=B, verbose=0) - torch_val) < 1e-4


def test_benchmark_gpt_first_step_as_pytorch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    tok, train_ids, _ = data.load_text()
    c = gpt_config(tok.vocab_size)
    ours, theirs, opt = _pair(torch, c)
    xb, yb = data.lm_windows(train_ids, c.context, 32, seed=0)
    ours_loss = ours.train_on_batch(xb, yb.astype(np.int64), return_dict=True)["loss"]
    loss = _torch_loss(torch, theirs, c, xb, yb)
    loss.backward()
    assert abs(ours_loss - float(loss)) < 1e-5
    grads = [w.grad for w in ours.trainable_weights]
    for i, (g, gt) in enumerate(zip(grads, _torch_grads(theirs), strict=True)):
        # attention's weights are listed in Keras's shapes (d, heads, key_dim) ...: the
        # same C-order values as torch's flat ones (session 22)
        assert g.size == gt.size and g.dtype == np.float32
        gt = gt.reshape(g.shape)
        # the key bias's gradient is zero but for rounding (softmax ignores a shift)
        np.testing.assert_allclose(g, gt, rtol=1e-3, atol=max(2e-3 * np.abs(gt).max(), 1e-7),
                                   err_msg=f"gradient {i} ({ours.trainable_weights[i].name})")
