"""Values and gradients of flashdist against the float64 reference, option by option."""
import numpy as np
import pytest
import torch

import flashdist
import reference

# flashdist computes in float32: errors against float64 stay at float32 rounding of O(1) values.
TOLERANCE = dict(rtol=1e-4, atol=2e-5)


def inputs(batch=2, seqlen_q=37, seqlen_k=53, heads=4, kv_heads=2, head_dim=24, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(batch, seqlen_q, heads, head_dim), (batch, seqlen_k, kv_heads, head_dim),
              (batch, seqlen_k, kv_heads, head_dim), (batch, seqlen_q, heads, head_dim)]
    return [torch.randn(shape, generator=generator) for shape in shapes]


def run_both(q, k, v, dout, flash_options, reference_options, attention=flashdist.flash_attn_func,
             reference_attention=reference.attention, extra=()):
    """(out, lse, dq, dk, dv) of flashdist (float32 inputs) and of the reference (float64)."""
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    out, lse, _ = attention(*leaves, *extra, return_attn_probs=True, **flash_options)
    out.backward(dout)
    ours = [out, lse] + [x.grad for x in leaves]
    leaves = [x.double().requires_grad_() for x in (q, k, v)]
    out, lse = reference_attention(*leaves, *extra, **reference_options)
    out.backward(dout.double())
    return ours, [out, lse] + [x.grad for x in leaves]


def assert_close(ours, expected):
    for name, a, b in zip(("out", "lse", "dq", "dk", "dv"), ours, expected):
        assert a.dtype == torch.float32, name
        assert not a.isnan().any(), name
        torch.testing.assert_close(a.detach().double(), b.detach(), **TOLERANCE, msg=lambda m: f"{name}: {m}")


CASES = {
    "plain": ({}, {}),
    "causal": (dict(causal=True), dict(causal=True)),
    "window": (dict(window_size=(7, 3)), dict(window=(7, 3))),
    "causal window": (dict(causal=True, window_size=(5, -1)), dict(causal=True, window=(5, -1))),
    "softcap": (dict(softcap=2.5), dict(softcap=2.5)),
    "scale": (dict(softmax_scale=0.3), dict(scale=0.3)),
    "alibi heads": (dict(alibi_slopes=torch.tensor([0.5, 0.25, 0.125, 0.0625])),
                    dict(alibi=torch.tensor([0.5, 0.25, 0.125, 0.0625]))),
    "alibi batch heads": (dict(alibi_slopes=torch.linspace(0.05, 0.4, 8).reshape(2, 4), causal=True),
                          dict(alibi=torch.linspace(0.05, 0.4, 8).reshape(2, 4), causal=True)),
    "everything": (dict(causal=True, window_size=(9, 0), softcap=3.0, alibi_slopes=torch.full((4,), 0.1)),
                   dict(causal=True, window=(9, 0), softcap=3.0, alibi=torch.full((4,), 0.1))),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("seqlens", [(37, 53), (53, 37)], ids=["q<k", "q>k"])
def test_options(case, seqlens):
    q, k, v, dout = inputs(seqlen_q=seqlens[0], seqlen_k=seqlens[1])
    assert_close(*run_both(q, k, v, dout, *CASES[case]))


def test_causal_is_bottom_right_with_empty_rows():
    """With more queries than keys, the first seqlen_q - seqlen_k rows see no key: o = 0,
    lse = -inf, zero gradients."""
    q, k, v, dout = inputs(seqlen_q=20, seqlen_k=12)
    ours, expected = run_both(q, k, v, dout, dict(causal=True), dict(causal=True))
    assert_close(ours, expected)
    out, lse, dq = ours[0], ours[1], ours[2]
    assert (out[:, :8] == 0).all() and (lse[:, :, :8] == float("-inf")).all() and (dq[:, :8] == 0).all()
    assert (lse[:, :, 8:].isfinite()).all()


@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (6, 2), (4, 1)], ids=["MHA", "GQA", "MQA"])
def test_head_groups(heads, kv_heads):
    q, k, v, dout = inputs(heads=heads, kv_heads=kv_heads, head_dim=64)
    assert_close(*run_both(q, k, v, dout, dict(causal=True), dict(causal=True)))


def test_varlen():
    cu_seqlens_q = torch.tensor([0, 5, 5, 40, 61], dtype=torch.int32)
    cu_seqlens_k = torch.tensor([0, 9, 12, 40, 77], dtype=torch.int32)
    generator = torch.Generator().manual_seed(1)
    q, dout = (torch.randn(61, 4, 16, generator=generator) for _ in range(2))
    k, v = (torch.randn(77, 2, 16, generator=generator) for _ in range(2))
    slopes = torch.linspace(0.1, 0.8, 16).reshape(4, 4)
    attention = lambda *a, **o: flashdist.flash_attn_varlen_func(*a[:5], 40, 37, **o)
    ours, expected = run_both(q, k, v, dout, dict(causal=True, softcap=4.0, alibi_slopes=slopes),
                              dict(causal=True, softcap=4.0, alibi=slopes), attention=attention,
                              reference_attention=reference.varlen_attention, extra=(cu_seqlens_q, cu_seqlens_k))
    assert ours[1].shape == (4, 61)
    assert_close(ours, expected)


@pytest.mark.parametrize("head_dim, head_dim_v", [(192, 128), (24, 40)], ids=["MLA", "wider v"])
def test_value_head_dim(head_dim, head_dim_v):
    """v with its own head dim: out, dout, dv are head_dim_v wide; q, k, dq, dk head_dim."""
    generator = torch.Generator().manual_seed(5)
    q, k = torch.randn(2, 37, 4, head_dim, generator=generator), torch.randn(2, 53, 2, head_dim, generator=generator)
    v, dout = torch.randn(2, 53, 2, head_dim_v, generator=generator), torch.randn(2, 37, 4, head_dim_v, generator=generator)
    ours, expected = run_both(q, k, v, dout, dict(causal=True, window_size=(20, -1)), dict(causal=True, window=(20, -1)))
    assert ours[0].shape == (2, 37, 4, head_dim_v) and ours[4].shape == v.shape and ours[2].shape == q.shape
    assert_close(ours, expected)


def test_varlen_value_head_dim():
    cu_seqlens_q = torch.tensor([0, 5, 5, 40, 61], dtype=torch.int32)
    cu_seqlens_k = torch.tensor([0, 9, 12, 40, 77], dtype=torch.int32)
    generator = torch.Generator().manual_seed(2)
    q, k = torch.randn(61, 4, 16, generator=generator), torch.randn(77, 2, 16, generator=generator)
    v, dout = torch.randn(77, 2, 8, generator=generator), torch.randn(61, 4, 8, generator=generator)
    attention = lambda *a, **o: flashdist.flash_attn_varlen_func(*a[:5], 40, 37, **o)
    ours, expected = run_both(q, k, v, dout, dict(causal=True), dict(causal=True), attention=attention,
                              reference_attention=reference.varlen_attention, extra=(cu_seqlens_q, cu_seqlens_k))
    assert_close(ours, expected)


def test_dropout_mask_and_gradients():
    """The mask return_attn_probs gives is the one the kernels applied, forward and backward."""
    p = 0.3
    q, k, v, dout = inputs(seqlen_q=40, seqlen_k=40)
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    out, lse, mask = flashdist.flash_attn_func(*leaves, dropout_p=p, causal=True, return_attn_probs=True, seed=7)
    out.backward(dout)
    assert mask.shape == (2, 4, 40, 40)
    assert mask.unique().tolist() == [0.0, pytest.approx(1 / (1 - p))]
    assert abs((mask == 0).double().mean().item() - p) < 0.02
    ours = [out, lse] + [x.grad for x in leaves]
    leaves = [x.double().requires_grad_() for x in (q, k, v)]
    out, lse = reference.attention(*leaves, causal=True, keep=mask.double())
    out.backward(dout.double())
    assert_close(ours, [out, lse] + [x.grad for x in leaves])


def test_dropout_seed_comes_from_torch_generator():
    q, k, v, _ = inputs()
    torch.manual_seed(3)
    first = flashdist.flash_attn_func(q, k, v, dropout_p=0.5, return_attn_probs=True)[2]
    second = flashdist.flash_attn_func(q, k, v, dropout_p=0.5, return_attn_probs=True)[2]
    torch.manual_seed(3)
    again = flashdist.flash_attn_func(q, k, v, dropout_p=0.5, return_attn_probs=True)[2]
    assert torch.equal(first, again) and not torch.equal(first, second)


def test_non_contiguous_inputs():
    """Views with any strides give exactly the contiguous inputs' results."""
    q, k, v, dout = inputs(seqlen_q=33, seqlen_k=33)
    views = [x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v)]
    views[0] = torch.cat([q, q], dim=3)[..., ::2]  # q's elements, every other one of a wider tensor
    q = views[0].contiguous()
    assert not any(x.is_contiguous() for x in views)
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    view_leaves = [x.detach().requires_grad_() for x in views]
    for args in (leaves, view_leaves):
        flashdist.flash_attn_func(*args, causal=True).backward(dout.transpose(1, 2).contiguous().transpose(1, 2))
    for a, b in zip(leaves, view_leaves):
        assert torch.equal(a.grad, b.grad)
    assert torch.equal(flashdist.flash_attn_func(*views), flashdist.flash_attn_func(q, k, v))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    """Half inputs compute in float32: the output is the float32 result rounded to the dtype, and
    gradients come back in the dtype."""
    q, k, v, dout = (x.to(dtype) for x in inputs())
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    out = flashdist.flash_attn_func(*leaves, causal=True)
    out.backward(dout)
    assert out.dtype == dtype and all(x.grad.dtype == dtype for x in leaves)
    expected = flashdist.flash_attn_func(q.float(), k.float(), v.float(), causal=True)
    assert torch.equal(out, expected.to(dtype))
    reference_leaves = [x.double().requires_grad_() for x in (q, k, v)]
    reference_out, _ = reference.attention(*reference_leaves, causal=True)
    reference_out.backward(dout.double())
    tolerance = dict(rtol=2e-2, atol=2e-2) if dtype == torch.bfloat16 else dict(rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(out.double(), reference_out.detach(), **tolerance)
    for ours, theirs in zip(leaves, reference_leaves):
        torch.testing.assert_close(ours.grad.double(), theirs.grad, **tolerance)


def test_numpy_forward_and_explicit_backward():
    """NumPy float32 arrays give the torch path's bytes; flashdist.backward gives autograd's."""
    q, k, v, dout = inputs()
    options = dict(causal=True, softcap=5.0, dropout_p=0.2, seed=11)
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    out, lse, _ = flashdist.flash_attn_func(*leaves, return_attn_probs=True, **options)
    out.backward(dout)
    arrays = [x.numpy() for x in (q, k, v)]
    np_out, np_lse, np_mask = flashdist.flash_attn_func(*arrays, return_attn_probs=True, **options)
    assert isinstance(np_out, np.ndarray) and np_out.dtype == np.float32 and np_mask.shape == (2, 4, 37, 53)
    assert np.array_equal(np_out, out.detach().numpy()) and np.array_equal(np_lse, lse.numpy())
    options.pop("seed")
    grads = flashdist.backward(dout.numpy(), *arrays, np_out, np_lse, seed=11, **options)
    for ours, leaf in zip(grads, leaves):
        assert np.array_equal(ours, leaf.grad.numpy())


def test_threads_change_no_bit():
    q, k, v, dout = inputs(batch=3, heads=6, kv_heads=3)
    results = []
    for threads in (1, 2, 3):
        flashdist.set_num_threads(threads)
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        out = flashdist.flash_attn_func(*leaves, causal=True, dropout_p=0.1, seed=1)
        out.backward(dout)
        results.append([out] + [x.grad for x in leaves])
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))


def test_default_threads_shared_among_local_ranks(monkeypatch):
    monkeypatch.delenv("FLASHDIST_THREADS", raising=False)
    cores = flashdist.get_num_threads()
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
    assert flashdist.get_num_threads() == max(1, cores // 2)
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", str(4 * cores))
    assert flashdist.get_num_threads() == 1


@pytest.mark.parametrize("seqlens", [(37, 53), (53, 37)], ids=["q<k", "q>k"])
def test_sinks(seqlens):
    """Sinks against the float64 reference, their gradient included; with q > k and causal, rows
    that see no key have out = 0 and lse = their sink."""
    q, k, v, dout = inputs(seqlen_q=seqlens[0], seqlen_k=seqlens[1])
    values = torch.tensor([0.5, -2.0, 3.0, 0.0])
    sinks = values.clone().requires_grad_()
    expected_sinks = values.double().requires_grad_()
    ours, expected = run_both(q, k, v, dout, dict(causal=True, sinks=sinks), dict(causal=True, sinks=expected_sinks))
    assert_close(ours, expected)
    assert sinks.grad.dtype == torch.float32
    torch.testing.assert_close(sinks.grad.double(), expected_sinks.grad, **TOLERANCE)
    if seqlens[0] > seqlens[1]:
        empty = seqlens[0] - seqlens[1]
        assert (ours[0][:, :empty] == 0).all()
        assert (ours[1][:, :, :empty] == values[None, :, None]).all()
