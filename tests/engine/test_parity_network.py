"""The LoRA network as sd-scripts' ``networks/lora.py`` builds it from ``network_args``, and
the network files (``network_weights``, ``dim_from_weights``, ``base_weights``) as
train_network.py reads them. On the tiny SD1.5-shaped model (blocks numbered as sd-scripts'
``get_block_index``: down_blocks_0 attention 1, its downsampler 3, mid 12, up_blocks_1's
attentions 16 and 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from tuilora.config import TrainingConfig  # noqa: E402
from tuilora.engine import build  # noqa: E402
from tuilora.engine.models import BaseModel, load_base_model  # noqa: E402
from tuilora.engine.network import build_network  # noqa: E402
from tuilora.engine.network_lora import LoRAModule, LoRANetwork  # noqa: E402
from tuilora.errors import UserError  # noqa: E402

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> BaseModel:
    return load_base_model(str(tiny_model))


def network(model: BaseModel, **options: Any) -> LoRANetwork:
    config = TrainingConfig.from_dict({"network_dim": 4, "network_alpha": 2.0, **options})
    built = build_network(
        config,
        model.unet,
        model.text_encoders,
        model.family,
        train_unet=True,
        train_text_encoder=True,
    )
    assert isinstance(built, LoRANetwork)
    return built


def test_conv_dim_without_conv_alpha_means_alpha_1(model: BaseModel) -> None:
    # create_network: conv_dim given, conv_alpha not -> conv_alpha = 1.0 (not the rank).
    net = network(model, network_args=["conv_dim=8"])
    conv = net.unet_loras["lora_unet_down_blocks_0_resnets_0_conv1"]
    assert conv.rank == 8 and float(conv.alpha) == 1.0 and conv.scale == 1.0 / 8
    linear = net.unet_loras["lora_unet_down_blocks_0_attentions_0_proj_in"]
    assert linear.rank == 4 and float(linear.alpha) == 2.0
    # the 1x1 shortcut of a ResNet is not a 3x3 conv: it takes the network's rank
    given = network(model, network_args=["conv_dim=8", "conv_alpha=4"])
    assert float(given.unet_loras["lora_unet_down_blocks_0_resnets_0_conv1"].alpha) == 4.0


def test_rank_and_module_dropout_only_while_training() -> None:
    # LoRAModule.forward: module dropout returns the original output when rand(1) < p;
    # rank dropout masks whole ranks per sample (rand > p) and scales by 1 / (1 - p);
    # neither acts in eval mode.
    layer = torch.nn.Linear(6, 5)
    lora = LoRAModule("lora_unet_x", layer, 3, 3.0, rank_dropout=0.5)
    torch.nn.init.normal_(lora.lora_up.weight)
    lora.apply_to()
    x = torch.randn(2, 6)
    with torch.no_grad():
        base = torch.nn.functional.linear(x, layer.weight, layer.bias)
        hidden = lora.lora_down(x)
        torch.manual_seed(3)
        mask = torch.rand((2, 3)) > 0.5
        expected = base + lora.lora_up(hidden * mask) * (1.0 / 0.5)
        torch.manual_seed(3)
        assert torch.allclose(layer(x), expected, atol=1e-6)
        lora.eval()
        assert torch.allclose(layer(x), base + lora.lora_up(hidden), atol=1e-6)
    skipper = LoRAModule("lora_unet_y", torch.nn.Linear(6, 5), 3, 3.0, module_dropout=0.5)
    torch.nn.init.normal_(skipper.lora_up.weight)
    skipper.apply_to()
    torch.manual_seed(0)
    first = float(torch.rand(1))
    torch.manual_seed(0)
    with torch.no_grad():
        out = skipper.original(x)
        plain = torch.nn.functional.linear(x, skipper.original.weight, skipper.original.bias)
    assert torch.allclose(out, plain) == (first < 0.5)
    lora.remove()
    skipper.remove()


def test_block_dims_and_alphas_per_block(model: BaseModel) -> None:
    # get_block_dims_and_alphas: one value per block (25 for SD1/SD2); a block with dim 0
    # gets no LoRA; conv_dim fills conv_block_dims with conv alpha 1.0.
    dims = [4] * 25
    dims[1], dims[12], dims[16] = 2, 0, 3
    alphas = [1.0] * 25
    alphas[16] = 3.0
    net = network(
        model,
        network_args=[
            "block_dims=" + ",".join(map(str, dims)),
            "block_alphas=" + ",".join(map(str, alphas)),
            "conv_dim=2",
        ],
    )
    names = net.modules_by_name()
    assert names["lora_unet_down_blocks_0_attentions_0_proj_in"].rank == 2
    assert not any("mid_block_attentions" in name for name in names)
    up = names["lora_unet_up_blocks_1_attentions_0_proj_in"]
    assert up.rank == 3 and float(up.alpha) == 3.0
    assert names["lora_unet_up_blocks_1_attentions_1_proj_in"].rank == 4
    conv = names["lora_unet_down_blocks_0_downsamplers_0_conv"]
    assert conv.rank == 2 and float(conv.alpha) == 1.0
    # the text encoder keeps network_dim / network_alpha
    assert all(m.rank == 4 and float(m.alpha) == 2.0 for m in net.te_loras.values())
    with pytest.raises(UserError, match="25 blocks"):
        network(model, network_args=["block_dims=4,4,4"])


def test_block_lr_weights_make_one_group_per_block(model: BaseModel) -> None:
    # get_block_lr_weight: down / up lists padded with 1 (or a preset curve, "zeros+0.25"),
    # mid as a list; weight 0 means no LoRA in the block; prepare_optimizer_params makes one
    # group per block named unet_block{N} at unet_lr x weight.
    net = network(
        model,
        network_args=["down_lr_weight=1,0.5", "mid_lr_weight=0", "up_lr_weight=zeros+0.25"],
    )
    assert not any("mid_block" in name for name in net.unet_loras)
    groups = {g["name"]: g["lr"] for g in net.param_groups(1e-3, 5e-4, 1e-4)}
    assert groups["textencoder"] == 5e-4
    assert groups["unet_block1"] == pytest.approx(0.5e-3)
    assert groups["unet_block16"] == pytest.approx(0.25e-3)
    assert groups["unet_block17"] == pytest.approx(0.25e-3)
    assert "unet" not in groups and "unet_block12" not in groups
    with pytest.raises(UserError, match="down_lr_weight"):
        TrainingConfig.from_dict({"network_args": ["down_lr_weight=0.5"]})


def test_loraplus_puts_lora_up_in_its_own_group(model: BaseModel) -> None:
    # set_loraplus_lr_ratio / assemble_params: lora_up weights go to a "plus" group at
    # lr x ratio; the UNet / TE ratios win over loraplus_lr_ratio.
    net = network(model, network_args=["loraplus_lr_ratio=4", "loraplus_text_encoder_lr_ratio=2"])
    groups = {g["name"]: g for g in net.param_groups(1e-3, 5e-4, 1e-4)}
    assert set(groups) == {"textencoder", "textencoder plus", "unet", "unet plus"}
    assert groups["unet plus"]["lr"] == pytest.approx(4e-3)
    assert groups["textencoder plus"]["lr"] == pytest.approx(1e-3)
    ups = {id(m.lora_up.weight) for m in net.modules_by_name().values()}
    assert {id(p) for p in groups["unet plus"]["params"]} <= ups
    assert not {id(p) for p in groups["unet"]["params"]} & ups


def test_unknown_network_args_are_refused() -> None:
    # sd-scripts' networks/lora.py ignores keys it does not read; tuilora refuses them
    # (and "dropout", which only LyCORIS reads: network_dropout sets it for LoRA).
    with pytest.raises(UserError, match="did you mean rank_dropout"):
        TrainingConfig.from_dict({"network_args": ["rank_dropot=0.1"]})
    with pytest.raises(UserError, match="network_dropout instead"):
        TrainingConfig.from_dict({"network_args": ["dropout=0.1"]})
    with pytest.raises(UserError, match="probability"):
        TrainingConfig.from_dict({"network_args": ["module_dropout=1.5"]})
    lycoris = {"network_module": "lycoris.kohya", "network_args": ["algo=loha", "dropout=0.1"]}
    assert TrainingConfig.from_dict(lycoris).network_args == ["algo=loha", "dropout=0.1"]


def _saved(model: BaseModel, tmp_path: Path, name: str, **options: Any) -> tuple[Path, Any]:
    from safetensors.torch import save_file

    net = network(model, **options)
    for module in net.modules_by_name().values():
        torch.nn.init.normal_(module.lora_up.weight, std=0.02)
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in net.kohya_state_dict().items()}, str(path))
    return path, net


def _make(config: TrainingConfig, model: BaseModel, *, allow_pickle: bool = False) -> Any:
    return build.make_network(
        config,
        model,
        CPU,
        torch.float32,
        train_unet=True,
        train_text_encoder=True,
        allow_pickle=allow_pickle,
    )


def test_dim_from_weights_takes_ranks_and_alphas_from_the_file(
    model: BaseModel, tmp_path: Path
) -> None:
    # create_network_from_weights: each module's rank is its lora_down's rows and its alpha
    # the file's; modules the file lacks get no LoRA (here the C3Lier convs are in it).
    path, source = _saved(
        model,
        tmp_path,
        "src.safetensors",
        network_dim=8,
        network_alpha=3.0,
        network_args=["conv_dim=2"],
    )
    config = TrainingConfig.from_dict(
        {"network_weights": str(path), "dim_from_weights": True, "network_dim": 1}
    )
    net = _make(config, model)
    try:
        assert set(net.modules_by_name()) == set(source.modules_by_name())
        conv = net.modules_by_name()["lora_unet_down_blocks_0_resnets_0_conv1"]
        assert conv.rank == 2 and float(conv.alpha) == 1.0
        for name, module in net.modules_by_name().items():
            assert module.rank in (2, 8)
            assert torch.equal(module.lora_up.weight, source.modules_by_name()[name].lora_up.weight)
    finally:
        net.remove()
    with pytest.raises(UserError, match="needs network_weights"):
        TrainingConfig.from_dict({"dim_from_weights": True})


def test_network_weights_continue_from_a_file_never_unpickled(
    model: BaseModel, tmp_path: Path
) -> None:
    # train_network.py loads network_weights into the new network; a non-safetensors file
    # would be torch.load-ed (unpickled): tuilora needs --allow-pickle for that (issue 12).
    path, source = _saved(model, tmp_path, "w.safetensors")
    pickled = tmp_path / "w.pt"
    torch.save(source.kohya_state_dict(), pickled)
    config = TrainingConfig.from_dict(
        {"network_weights": str(pickled), "network_dim": 4, "network_alpha": 2.0}
    )
    with pytest.raises(UserError, match="--allow-pickle"):
        _make(config, model)
    for allowed in (config, config.replace(network_weights=str(path))):
        net = _make(allowed, model, allow_pickle=True)
        try:
            name = "lora_unet_down_blocks_0_attentions_0_proj_in"
            assert torch.equal(
                net.modules_by_name()[name].lora_up.weight,
                source.modules_by_name()[name].lora_up.weight,
            )
        finally:
            net.remove()


def test_base_weights_are_merged_before_training(model: BaseModel, tmp_path: Path) -> None:
    # base_weights: each file merged into the model (W += multiplier * up @ down * scale)
    # before the network is made; base_weights_multiplier defaults to 1.0 per file.
    path, source = _saved(model, tmp_path, "base.safetensors")
    name = "lora_unet_down_blocks_0_attentions_0_proj_in"
    module = source.modules_by_name()[name]
    before = module.original.weight.detach().clone()
    config = TrainingConfig.from_dict(
        {"base_weights": [str(path)], "base_weights_multiplier": [0.5]}
    )
    build.merge_base_weights(config, model, allow_pickle=False)
    expected = before + 0.5 * module.delta_weight()
    assert torch.allclose(module.original.weight, expected, atol=1e-6)
    with torch.no_grad():
        module.original.weight.copy_(before)  # the shared model stays as it was
    with pytest.raises(UserError, match="more entries than base_weights"):
        TrainingConfig.from_dict({"base_weights_multiplier": [0.5]})


def test_text_encoder_only_trains_no_unet_module(model: BaseModel) -> None:
    # train_network.py: network_train_text_encoder_only -> apply_to(..., apply_unet=False).
    config = TrainingConfig.from_dict({"network_train_text_encoder_only": True})
    train_unet, train_te = build.parts_to_train(config)
    assert (train_unet, train_te) == (False, True)
    net = build_network(
        config,
        model.unet,
        model.text_encoders,
        model.family,
        train_unet=False,
        train_text_encoder=True,
    )
    assert len(net.counts().text_encoders) == 1 and net.counts().unet == 0
