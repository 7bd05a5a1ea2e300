"""Convolutional encoder / decoder of the RVQ-VAE (docs/networks.md#rvq-vae-encoder-and-decoder): T frames <-> T / stride_t**down_t tokens."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from models.vq.resnet import Resnet1D, make_activation


@dataclass(frozen=True)
class ConvStack:
    """What the encoder and the decoder share: channel ``width`` and, per level, a :class:`Resnet1D` of ``depth``
    dilated blocks (dilation ``dilation_growth_rate**i``), its ``activation`` and ``norm``."""

    width: int = 512
    depth: int = 3
    dilation_growth_rate: int = 3
    activation: str = "relu"
    norm: str | None = None

    def resnet(self) -> Resnet1D:
        """One level's residual stack, dilations largest first in both networks (as the official code)."""
        return Resnet1D(
            self.width,
            depth=self.depth,
            dilation_growth_rate=self.dilation_growth_rate,
            activation=self.activation,
            norm=self.norm,
        )


class Encoder(nn.Module):
    """(B, D, T) features -> (B, C, n) latents with n = floor(T / stride_t**down_t) (floors at every stride).

    ``model`` indices match the official layout: 0 conv in, 1 act, 2..down_t+1 [strided conv, Resnet1D], last conv.
    """

    def __init__(
        self, *, input_width: int, output_emb_width: int, stack: ConvStack, down_t: int = 2, stride_t: int = 2
    ) -> None:
        super().__init__()
        filter_t, pad_t, width = stride_t * 2, stride_t // 2, stack.width
        blocks: list[nn.Module] = [nn.Conv1d(input_width, width, 3, 1, 1), make_activation(stack.activation)]
        for _ in range(down_t):
            blocks.append(nn.Sequential(nn.Conv1d(width, width, filter_t, stride_t, pad_t), stack.resnet()))
        blocks.append(nn.Conv1d(width, output_emb_width, 3, 1, 1))
        self.model = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """(B, C, n) latents -> (B, D, n * 2**down_t) features (nearest up-sampling by 2 per level)."""

    def __init__(self, *, input_width: int, output_emb_width: int, stack: ConvStack, down_t: int = 2) -> None:
        super().__init__()
        width = stack.width
        blocks: list[nn.Module] = [nn.Conv1d(output_emb_width, width, 3, 1, 1), make_activation(stack.activation)]
        for _ in range(down_t):
            blocks.append(
                nn.Sequential(
                    stack.resnet(),
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv1d(width, width, 3, 1, 1),
                )
            )
        blocks += [
            nn.Conv1d(width, width, 3, 1, 1),
            make_activation(stack.activation),
            nn.Conv1d(width, input_width, 3, 1, 1),
        ]
        self.model = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
