"""ShiftAddViT: sizes from the release's modules, power-of-two shift layers, the binary-code attention, top-1 experts,
PVTv2 weights reparameterised, and the exported graph against eager."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.models.shiftaddvit import KernelHash, LinearShift, ShiftAddExperts


@pytest.mark.parametrize(("name", "moe", "dense"), [("b0", 6_771_484, 3_136_472), ("b1", 26_386_812, 11_891_512),
                                                      ("b2", 49_519_527, 20_367_897)])
def test_parameter_counts_follow_the_releases_modules(name, moe, dense):
    """Pins: counted from the release's module definitions by hand (docs/research/shiftaddvit.md, which reproduces timm's
    PVTv2 counts the same way); the paper's tables could not be read. The hash buffers are not parameters."""
    def count(model: torch.nn.Module) -> int:
        return sum(p.numel() for p in model.parameters())

    assert count(zoo.load(f"shiftaddvit_pvt_v2_{name}")) == moe
    assert count(zoo.load(f"shiftaddvit_pvt_v2_{name}", moe_attn=False, moe_mlp=False)) == dense


def test_shift_layer_weights_are_signed_powers_of_two_converted_from_a_linear_layer():
    torch.manual_seed(0)
    linear = torch.nn.Linear(16, 8)
    with torch.no_grad():
        linear.weight[0, 0], linear.weight[0, 1], linear.weight[0, 2] = 0.0, 3.0, -1e-7
    shift = LinearShift(16, 8).set_from(linear.weight, linear.bias)
    w = shift.weight().detach()
    nonzero = w[w != 0]
    assert torch.equal(torch.log2(nonzero.abs()), torch.log2(nonzero.abs()).round())  # powers of two
    assert w[0, 0] == 0 and w[0, 1] == 1.0 and w[0, 2] == -(2.0 ** -14)  # zero kept; exponents saturate at 0 and -14
    assert torch.equal(w.sign(), linear.weight.sign())
    inside = (linear.weight.abs() >= 2 ** -14) & (linear.weight.abs() <= 1)
    log_error = (torch.log2(w[inside].abs()) - torch.log2(linear.weight[inside].abs())).abs()
    assert log_error.max() <= 0.5 + 1e-6  # the nearest power of two in the log domain
    x = torch.randn(4, 16)
    expected = F.linear(torch.floor(x * 2 ** 16) / 2 ** 16, w, torch.floor(linear.bias * 2 ** 16) / 2 ** 16)
    torch.testing.assert_close(shift(x), expected, rtol=0, atol=0)
    shift(x).sum().backward()  # straight-through: both parameters learn
    assert shift.shift.grad.abs().sum() > 0 and shift.sign.grad.abs().sum() > 0


def test_experts_send_each_token_to_one_expert_and_the_router_learns():
    torch.manual_seed(0)
    moe = ShiftAddExperts.from_linear(torch.nn.Linear(8, 6))
    x = torch.randn(3, 5, 8)
    choice = moe.router(x).argmax(-1)
    assert 0 < choice.float().mean() < 1  # both experts get tokens here
    expected = torch.where(choice[..., None] == 0, moe.experts[0](x), moe.experts[1](x))
    out = moe(x)
    torch.testing.assert_close(out, expected)  # gate value 1: the chosen expert's output as it is
    out.sum().backward()
    assert moe.router.weight.grad.abs().sum() > 0 and moe.probabilities.shape == (15, 2)


def test_the_hash_codes_near_tokens_alike_and_is_fitted_once_on_the_first_training_batch(monkeypatch):
    torch.manual_seed(0)
    x = F.normalize(torch.randn(2, 2, 40, 8), dim=-1)
    hashing = KernelHash(2, 8, bits=8)
    hashing.fit(x, steps=10)
    codes = hashing(x)
    assert set(codes.unique().tolist()) == {0.0, 1.0}
    agree = codes @ codes.transpose(-1, -2) + (1 - codes) @ (1 - codes).transpose(-1, -2)  # bits in common
    similarity = x @ x.transpose(-1, -2)
    near = agree.gather(-1, similarity.topk(5, -1).indices[..., 1:]).mean()
    far = agree.gather(-1, similarity.topk(5, -1, largest=False).indices).mean()
    assert near > far + 1  # the kernel to anchors keeps angular neighbours' codes close

    monkeypatch.setattr(KernelHash, "steps", 5)  # 5 SGD steps a bit, not 100: the same path
    model = zoo.load("shiftaddvit_pvt_v2_b0", num_classes=3, moe_attn=False, moe_mlp=False)
    attentions = [m for m in model.modules() if hasattr(m, "hash")]
    assert len(attentions) == 6 and not any(a.hash.fitted for a in attentions)
    model.eval()(torch.randn(1, 3, 32, 32))
    assert not any(a.hash.fitted for a in attentions)  # evaluation never fits
    first = attentions[0].hash.A.clone()
    model.train()(torch.randn(2, 3, 32, 32))
    assert all(a.hash.fitted for a in attentions) and not torch.equal(attentions[0].hash.anchor, torch.zeros_like(first[:1]))
    anchors = attentions[0].hash.anchor.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(attentions[0].hash.anchor, anchors)  # frozen after the first batch
    reloaded = zoo.load("shiftaddvit_pvt_v2_b0", num_classes=3, moe_attn=False, moe_mlp=False)
    reloaded.load_state_dict(model.state_dict())
    assert all(m.hash.fitted for m in reloaded.modules() if hasattr(m, "hash"))  # the flag is saved with the weights


def test_attention_is_half_v_plus_the_binary_product_over_pi_normalised_plus_the_token_convolution():
    torch.manual_seed(0)
    model = zoo.load("shiftaddvit_pvt_v2_b0", num_classes=3, moe_attn=False, moe_mlp=False).eval()
    attn = model.stages[1].blocks[0].attn  # 2 heads of 32
    x = torch.randn(2, 16, 64)
    qk = F.normalize(attn.to_qk(x).view(2, 16, 2, 32).transpose(1, 2), dim=-1)
    v = attn.to_v(x).view(2, 16, 2, 32).transpose(1, 2)
    codes = attn.hash(qk)
    mixed = torch.zeros_like(v)
    for i in range(16):  # token by token: each key's binary similarity to query i, as additions
        weights = (codes[:, :, i : i + 1] * codes).sum(-1, keepdim=True)  # [B, H, N, 1]
        mixed[:, :, i] = 0.5 * v[:, :, i] + (weights * v).sum(2) / math.pi
    convolved = sum(attn.dconv.weight[:, 0, t, 0].view(1, 2, 1, 1) * F.pad(v, (0, 0, 4, 4))[:, :, t : t + 16] for t in range(9))
    expected = attn.proj((F.normalize(mixed, dim=-1) + convolved).transpose(1, 2).reshape(2, 16, 64))
    torch.testing.assert_close(attn(x), expected)


def test_pvt_v2_weights_are_reparameterised_from_the_hub_tag_and_a_file(hub_env, hub, tmp_path):
    import timm
    from safetensors.torch import save, save_file

    torch.manual_seed(0)
    pvt = timm.create_model("pvt_v2_b0").eval()
    hub.add("timm/pvt_v2_b0.in1k", {"model.safetensors": save(pvt.state_dict())})
    torch.manual_seed(1)
    model = zoo.load("shiftaddvit_pvt_v2_b0.pvt_v2_in1k").eval()
    path = tmp_path / "pvt_v2_b0.safetensors"
    save_file(pvt.state_dict(), path)
    torch.manual_seed(1)  # the same fresh routers, hashes and token convolutions
    from_file = zoo.load("shiftaddvit_pvt_v2_b0", weights=path)
    assert all(torch.equal(a, b) for a, b in zip(from_file.state_dict().values(), model.state_dict().values()))
    state, source = model.state_dict(), pvt.state_dict()
    for key in ("patch_embed.proj.weight", "stages.3.blocks.1.attn.kv.weight", "stages.0.blocks.0.mlp.dwconv.weight", "head.weight"):
        assert torch.equal(state[key], source[key]), key
    attn = "stages.1.blocks.0.attn."
    assert torch.equal(state[attn + "to_qk.experts.0.weight"], source[attn + "q.weight"])
    assert torch.equal(state[attn + "to_v.experts.0.weight"], source[attn + "kv.weight"][64:])  # the value half
    assert not any(k.startswith(tuple(attn + p for p in ("sr.", "norm.", "kv."))) for k in state)
    fc1 = "stages.2.blocks.1.mlp.fc1."
    assert torch.equal(state[fc1 + "experts.0.weight"], source[fc1 + "weight"])
    shifted = model.get_submodule(fc1[:-1]).experts[1].weight().detach()
    assert torch.equal(shifted.sign(), source[fc1 + "weight"].sign())
    dense = source[fc1 + "weight"]
    inside = dense.abs() >= 2 ** -14  # smaller ones saturate at 2^-14
    assert (torch.log2(shifted[inside].abs()) - torch.log2(dense[inside].abs())).abs().max() <= 0.5 + 1e-6
    assert torch.equal(state[fc1 + "experts.1.bias"], source[fc1 + "bias"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # the patch embedding and first norms are PVTv2's own
        torch.testing.assert_close(model.patch_embed(x), pvt.patch_embed(x))


def test_an_exported_mixture_selects_between_both_experts_as_eager_dispatches(tmp_path):
    """Runtimes have no data-dependent dispatch: the graph runs both experts and selects per token, with the same
    result (the whole model's ONNX export is verified in tests/test_export.py)."""
    import onnx
    import onnxruntime as ort

    torch.manual_seed(0)
    moe = ShiftAddExperts(8, 6).eval()
    x = torch.randn(2, 7, 8)
    path = tmp_path / "moe.onnx"
    torch.onnx.export(moe, (x,), str(path), dynamo=True, opset_version=18)
    assert {"Where", "ArgMax"} <= {n.op_type for n in onnx.load(str(path)).graph.node}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), moe(x), atol=1e-5, rtol=1e-5)


def test_the_shiftadd_plugin_balances_latency_weighted_importance():
    from types import SimpleNamespace

    from zoo.plugins.base import build

    from zoo.errors import ConfigError

    with pytest.raises(ConfigError, match="two positive costs"):
        build({"shiftadd": {"latency": [6]}}, "classification")
    (plugin,) = build({"shiftadd": {"weight": 0.5}}, "classification")
    terms = {}
    host = SimpleNamespace(model=zoo.load("mobilenetv3_small_100"), add_loss_term=terms.__setitem__)
    with pytest.raises(ConfigError, match="has none"):
        plugin.setup(None, host, "fit")
    moe = ShiftAddExperts(4, 4).train()
    host.model = torch.nn.Sequential(moe)
    plugin.setup(None, host, "fit")
    moe(torch.randn(6, 4))
    with torch.no_grad():
        moe.probabilities = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    loss, items = terms["shiftadd"](None, torch.zeros(1), None)
    importance = torch.tensor([1.4 * 6, 1.6 * 4])  # summed probabilities times the latencies (6, 4)
    expected = importance.var() / importance.mean() ** 2
    torch.testing.assert_close(items["balance"], expected)
    torch.testing.assert_close(loss, 0.5 * expected)
    assert items["shift_share"] == pytest.approx(2 / 3)
