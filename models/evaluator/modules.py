"""Text/motion evaluator networks of Guo et al. 2022 (docs/networks.md#evaluator-networks), with the official state-dict key names.

Three networks: a strided-conv movement encoder (features -> one vector per 4 frames), a bidirectional GRU
motion encoder and a bidirectional GRU text encoder that map into a shared 512-d co-embedding space.
The GRUs run on packed sequences with ``enforce_sorted=False``, so callers may pass lengths in any order and a
sample's embedding never depends on its batch companions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence


class MovementConvEncoder(nn.Module):
    """Two stride-2 convolutions: ``(B, T, D_in) -> (B, T // 4, d_out)``.

    Keys: ``main.{0,3}.{weight,bias}`` (Conv1d, k4 s2 p1), ``out_net.{weight,bias}`` (Linear).
    """

    def __init__(self, *, input_size: int, hidden_size: int = 512, output_size: int = 512) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(input_size, hidden_size, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden_size, output_size, 4, 2, 1),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output_size, output_size)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, D_in) -> (B, T // 4, d_out)."""
        return self.out_net(self.main(x.transpose(1, 2)).transpose(1, 2))


class _BiGRUCoEncoder(nn.Module):
    """Shared body: input projection, 1-layer BiGRU from a learned initial state, MLP on the final states."""

    def __init__(self, *, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.input_emb = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(
            nn.Linear(hidden_size * 2, hidden_size),
            nn.LayerNorm(hidden_size),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_size, output_size),
        )
        # Learned initial state (fwd, bwd), repeated over the batch; key name "hidden" as in the reference.
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden_size))

    def _encode(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: (B, T, input_size), lengths: (B,) ints >= 1 -> (B, output_size), in input order."""
        lengths = torch.as_tensor(lengths).to("cpu", torch.int64)
        if lengths.numel() and int(lengths.min()) < 1:
            raise ValueError(f"sequence lengths must be >= 1, got {lengths.tolist()}")
        h0 = self.hidden.expand(-1, x.shape[0], -1).contiguous()
        packed = pack_padded_sequence(self.input_emb(x), lengths, batch_first=True, enforce_sorted=False)
        _, last = self.gru(packed, h0)  # (2, B, H), already restored to input order
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))


class MotionEncoderBiGRUCo(_BiGRUCoEncoder):
    """Movement features -> co-embedding. ``(B, n, 512), lengths (B,) in units of 4 frames -> (B, 512)``."""

    def __init__(self, *, input_size: int = 512, hidden_size: int = 1024, output_size: int = 512) -> None:
        super().__init__(input_size=input_size, hidden_size=hidden_size, output_size=output_size)

    def forward(self, movements: Tensor, lengths: Tensor) -> Tensor:
        """movements: (B, n, d_in), lengths: (B,) valid steps (``m_lens // 4``) -> (B, d_out)."""
        return self._encode(movements, lengths)


class TextEncoderBiGRUCo(_BiGRUCoEncoder):
    """GloVe words + POS one-hots -> co-embedding. ``(B, L, 300), (B, L, 15), (B,) -> (B, 512)``."""

    def __init__(
        self, *, word_size: int = 300, pos_size: int = 15, hidden_size: int = 512, output_size: int = 512
    ) -> None:
        super().__init__(input_size=word_size, hidden_size=hidden_size, output_size=output_size)
        self.pos_emb = nn.Linear(pos_size, word_size)

    def forward(self, word_embs: Tensor, pos_onehot: Tensor, sent_lens: Tensor) -> Tensor:
        """word_embs: (B, L, 300), pos_onehot: (B, L, 15), sent_lens: (B,) -> (B, d_out)."""
        return self._encode(word_embs + self.pos_emb(pos_onehot), sent_lens)


class MovementConvDecoder(nn.Module):
    """Inverse of :class:`MovementConvEncoder`, used only to pre-train it: ``(B, n, d_in) -> (B, 4n, D_out)``."""

    def __init__(self, *, input_size: int = 512, hidden_size: int = 512, output_size: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose1d(input_size, hidden_size, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose1d(hidden_size, output_size, 4, 2, 1),
            nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(output_size, output_size)

    def forward(self, latents: Tensor) -> Tensor:
        """latents: (B, n, d_in) -> (B, 4n, D_out)."""
        return self.out_net(self.main(latents.transpose(1, 2)).transpose(1, 2))
