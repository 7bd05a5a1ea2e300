"""Dilated 1-D residual stacks of the RVQ-VAE encoder/decoder (docs/networks.md#rvq-vae-encoder-and-decoder).

Module and attribute names (``model``, ``conv1``, ``conv2``, ``norm1``, ``norm2``) follow the official state-dict
layout (docs/checkpoints.md#state-dict-keys) so released checkpoints load without key editing.
"""

from __future__ import annotations

from torch import Tensor, nn

ACTIVATIONS = ("relu", "silu", "gelu")
NORMS = (None, "LN", "GN", "BN")


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a ``(B, C, T)`` tensor (parameter names as ``nn.LayerNorm``)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(-2, -1)).transpose(-2, -1)


def make_activation(name: str) -> nn.Module:
    """``relu`` | ``silu`` | ``gelu`` as a parameter-free module."""
    table = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}
    if name not in table:
        raise ValueError(f"vq_act {name!r} is not supported: use one of {list(table)}")
    return table[name]()


def make_norm(name: str | None, channels: int) -> nn.Module:
    """Normalisation over channels: ``None`` (identity, the released setting), ``LN``, ``GN`` (32 groups), ``BN``."""
    # QUIRK(reference): official option files store the string 'None' for "no normalisation".
    if name is None or name == "None":
        return nn.Identity()
    if name == "LN":
        return ChannelLayerNorm(channels)
    if name == "GN":
        return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)
    if name == "BN":
        return nn.BatchNorm1d(num_features=channels, eps=1e-6, affine=True)
    raise ValueError(f"vq_norm {name!r} is not supported: use None, LN, GN or BN")


class ResConv1DBlock(nn.Module):
    """Pre-activation residual block: act(norm) -> dilated conv k3 -> act(norm) -> conv k1 -> dropout -> + x.

    x: (B, C, T) -> (B, C, T).
    """

    def __init__(
        self, channels: int, *, dilation: int, activation: str = "relu", norm: str | None = None, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, channels)
        self.norm2 = make_norm(norm, channels)
        self.activation1 = make_activation(activation)
        self.activation2 = make_activation(activation)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=3, stride=1, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=1, stride=1, padding=0)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(self.activation1(self.norm1(x)))
        h = self.conv2(self.activation2(self.norm2(h)))
        return x + self.dropout(h)


class Resnet1D(nn.Module):
    """``depth`` residual blocks with dilations ``growth**i``, largest first (docs/networks.md#rvq-vae-encoder-and-decoder: 9, 3, 1).

    x: (B, C, T) -> (B, C, T).
    """

    def __init__(
        self,
        channels: int,
        *,
        depth: int = 3,
        dilation_growth_rate: int = 3,
        reverse_dilation: bool = True,
        activation: str = "relu",
        norm: str | None = None,
    ) -> None:
        super().__init__()
        dilations = [dilation_growth_rate**i for i in range(depth)]
        if reverse_dilation:
            dilations = dilations[::-1]
        self.model = nn.Sequential(
            *[ResConv1DBlock(channels, dilation=d, activation=activation, norm=norm) for d in dilations]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
