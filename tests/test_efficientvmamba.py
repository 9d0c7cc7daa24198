"""EfficientVMamba: the chunked selective scan against the recurrence, the atrous sub-lattice order, the release's key
layout and its pickled .ckpt through pretrained=True."""
from __future__ import annotations

import io

import pytest
import torch

import zoo
import zoo.models.efficientvmamba as evm
from zoo.errors import BadArgumentError, UnsafeWeightsError


def scan_inputs(length: int, channels: int = 6, groups: int = 2, states: int = 4, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    kd = groups * channels
    return (torch.randn(batch, kd, length, generator=g), torch.randn(batch, kd, length, generator=g) * 2,
            -torch.rand(kd, states, generator=g) * 8, torch.randn(batch, groups, states, length, generator=g),
            torch.randn(batch, groups, states, length, generator=g), torch.randn(kd, generator=g),
            torch.randn(kd, generator=g))


@pytest.mark.parametrize(("length", "chunk"), [(1, None), (7, None), (50, None), (50, 7), (50, 64), (196, None)])
def test_chunked_scan_equals_the_step_by_step_recurrence(length, chunk):
    """Decays from ~1 down to exp(-8 * softplus(+6)) per step, lengths that no chunk size divides, one chunk longer
    than the sequence: every output within 1e-5 of the recurrence."""
    inputs = scan_inputs(length)
    reference = evm.selective_scan_reference(*inputs)
    torch.testing.assert_close(evm.selective_scan(*inputs, chunk=chunk), reference, rtol=0, atol=1e-5)
    assert reference.abs().max() > 1  # outputs of a size where 1e-5 means something


def test_chunked_scan_gradients_equal_the_recurrences():
    """Training runs the chunked scan: its gradients for every input are the recurrence's."""
    inputs = [t.requires_grad_() for t in scan_inputs(30, seed=1)]
    weights = torch.randn(2, 12, 30, generator=torch.Generator().manual_seed(2))
    grads = [torch.autograd.grad((fn(*inputs) * weights).sum(), inputs)
             for fn in (evm.selective_scan, evm.selective_scan_reference)]
    for chunked, reference in zip(*grads, strict=True):
        torch.testing.assert_close(chunked, reference, rtol=1e-4, atol=1e-5)


def test_the_four_sub_lattices_are_scanned_in_the_papers_order_and_written_back_in_place(monkeypatch):
    """With a scan that sums each sequence up to the current step, a pixel's output is the sum of its sub-lattice up
    to it: [::2, ::2] and [::2, 1::2] read row by row, [1::2, ::2] and [1::2, 1::2] column by column."""
    monkeypatch.setitem(evm.SCANS, "cumsum", lambda u, *rest: u.cumsum(-1))
    op = evm.AtrousScan(8, scan="cumsum")
    height, width = 5, 7  # odd on both sides: the padding is exercised
    x = torch.randn(1, 16, height, width)
    got = op.scan_lattices(x)[0].permute(2, 0, 1)  # [D, H, W]
    expected = torch.zeros_like(x[0])
    for r in range(height):
        for c in range(width):
            by_columns = r % 2 == 1
            for r2 in range(r % 2, height, 2):
                for c2 in range(c % 2, width, 2):
                    before = (c2, r2) <= (c, r) if by_columns else (r2, c2) <= (r, c)
                    if before:
                        expected[:, r, c] += x[0, :, r2, c2]
    torch.testing.assert_close(got, expected)


def test_sizes_stages_and_the_releases_key_layout():
    model = zoo.load("efficientvmamba_tiny").eval()
    state = model.state_dict()
    # the release's names and shapes (docs/sources.md): stage 1 works at d_inner 96 with dt rank 3 and 16 states
    assert state["layers.0.blocks.0.op.x_proj_weight"].shape == (4, 3 + 32, 96)
    assert state["layers.0.blocks.0.op.dt_projs_weight"].shape == (4, 96, 3)
    assert state["layers.0.blocks.0.op.A_logs"].shape == (384, 16) and state["layers.0.blocks.0.op.Ds"].shape == (384,)
    assert state["layers.1.blocks.1.conv_branch.3.weight"].shape == (96, 96, 1, 1)
    assert state["layers.1.blocks.1.se.global_reduce.weight"].shape == (12, 96)
    assert state["layers.1.downsample.reduction.weight"].shape == (192, 384)
    assert state["layers.2.1.conv_pw.0.weight"].shape == (768, 192, 1, 1)  # index 0 is the permute
    assert state["layers.2.4.se.conv_reduce.weight"].shape == (96, 768, 1, 1)
    assert state["layers.2.6.reduction.weight"].shape == (384, 768)  # stage 3's downsampling after the permute back
    assert not any(k.startswith("layers.3.5") for k in state)  # no downsampling after the last stage
    assert state["patch_embed.0.weight"].shape == (48, 3, 4, 4) and state["classifier.head.weight"].shape == (1000, 384)
    x = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        maps = model.forward_intermediates(x)
        assert [tuple(m.shape[1:]) for m in maps] == [(48, 24, 32), (96, 12, 16), (192, 6, 8), (384, 3, 4)]
        assert model(x).shape == (1, 1000)
        half = model.to(torch.bfloat16)(x.bfloat16())  # the scan runs in fp32 and hands back the model's dtype
        assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    with pytest.raises(BadArgumentError, match="scan='fast' is not one of auto, chunked"):
        model.set_scan("fast")


def test_auto_scan_uses_the_kernel_only_for_cuda_tensors_with_mamba_ssm(monkeypatch):
    called = []
    monkeypatch.setattr(evm, "_cuda_scan", lambda *inputs: called.append(inputs) or inputs[0])
    monkeypatch.setattr(evm, "_has_kernel", lambda: True)
    inputs = scan_inputs(5)
    torch.testing.assert_close(evm.SCANS["auto"](*inputs), evm.selective_scan(*inputs))  # a CPU tensor: chunked
    assert not called
    on_gpu = type("CudaTensor", (), {"is_cuda": True})()  # stands for a CUDA tensor on this GPU-less machine
    evm.SCANS["auto"](on_gpu, *inputs[1:])
    assert len(called) == 1 and called[0][0] is on_gpu
    monkeypatch.setattr(evm, "_has_kernel", lambda: False)
    with pytest.raises(AttributeError):  # without mamba_ssm the chunked scan gets it (and fails on the stand-in)
        evm.SCANS["auto"](on_gpu, *inputs[1:])
    assert len(called) == 1


def test_pretrained_reads_the_releases_pickled_checkpoint_only_when_allowed(hub_env, hub):
    torch.manual_seed(3)
    source = zoo.load("efficientvmamba_tiny").eval()
    buffer = io.BytesIO()  # as the release saves it: wrapped, with DataParallel's prefix
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, buffer)
    hub.add("TerryPei/EfficientVMamba-Tiny", {"efficient_vmamba_tiny.ckpt": buffer.getvalue()})
    with pytest.raises(UnsafeWeightsError, match="allow_pickle=True"):
        zoo.load("efficientvmamba_tiny", pretrained=True)
    model = zoo.load("efficientvmamba_tiny", pretrained=True, allow_pickle=True).eval()
    assert model.zoo_spec.tag == "in1k"
    from zoo.card import _summary_section

    spec = zoo.info("efficientvmamba_tiny")
    example = "\n".join(_summary_section(spec, None, spec.weight(), None, None))  # the card's example says so too
    assert 'zoo.load("efficientvmamba_tiny.in1k", pretrained=True, allow_pickle=True)' in example
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x))


@pytest.mark.parametrize("name", ["efficientvmamba_tiny", "efficientvmamba_small"])
def test_macs_plus_the_scans_elementwise_work_give_the_reported_flops(name):
    """The README's GFLOPs count the selective scan's elementwise work too (VMamba's counter: 9 L D N per scan),
    which torch's flop counter does not see; with it added, the zoo's model comes to the reported figure."""
    from zoo.bench import count_macs

    model = zoo.load(name).eval()
    macs = count_macs(model, torch.rand(1, 3, 224, 224))
    scans = 0
    for stage, side in ((0, 56), (1, 28)):  # the EVSS stages' maps at 224
        for block in model.layers[stage].blocks:
            inner = block.op.out_norm.normalized_shape[0]
            scans += 9 * side * side * inner * evm.STATES  # four directions of a quarter of the map each
    reported = zoo.info(name).reported_value("flops")
    assert abs((macs + scans) / 1e9 - reported.value) <= reported.rounding, (macs, scans)
