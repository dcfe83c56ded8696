"""The acoustic model: conv subsampling -> (Bi)LSTM -> linear -> CTC log-probs.

A plain `nn.Module` that imports only torch; its constructor arguments are its whole
description (`ModelConfig`), saved with the weights so a model file rebuilds itself.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of `AcousticModel`.

    Attributes:
        n_mels: input feature bins.
        vocab_size: output tokens, CTC blank included.
        subsampling: time reduction of the conv front end: 1 (no convs), 2 or 4.
        conv_channels: channels of each stride-2 conv layer.
        hidden_size: LSTM units per direction.
        num_layers: stacked LSTM layers.
        dropout: dropout between LSTM layers and before the output layer.
        bidirectional: False for a causal, streaming-capable model.
    """

    n_mels: int = 80
    vocab_size: int = 29
    subsampling: int = 2
    conv_channels: int = 256
    hidden_size: int = 256
    num_layers: int = 3
    dropout: float = 0.2
    bidirectional: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


class ConvSubsampling(nn.Module):
    """log2(factor) stride-2 1-D convolutions over time, each followed by GELU.

    Frames beyond each item's length are zeroed after every layer, so padding never leaks
    into the valid frames through the kernel's receptive field.
    """

    def __init__(self, in_channels: int, channels: int, factor: int) -> None:
        super().__init__()
        if factor not in (2, 4):
            raise ValueError(f"subsampling factor must be 2 or 4, got {factor}")
        layers = []
        for i in range(factor.bit_length() - 1):
            layers.append(nn.Conv1d(in_channels if i == 0 else channels, channels, 3, 2, 1))
        self.convs = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F), (B,) -> (B, T', C), (B,) with T' = ceil(T / factor)."""
        x = x.transpose(1, 2)  # (B, F, T): Conv1d wants channels first
        for conv in self.convs:
            x = nn.functional.gelu(conv(x))
            lengths = (lengths - 1) // 2 + 1  # kernel 3, stride 2, padding 1
            valid = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]
            x = x * valid[:, None, :]
        return x.transpose(1, 2), lengths  # (B, T', C)


class AcousticModel(nn.Module):
    """Features -> CTC log-probabilities."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        lstm_input = config.n_mels
        self.subsample: ConvSubsampling | None = None
        if config.subsampling > 1:
            self.subsample = ConvSubsampling(
                config.n_mels, config.conv_channels, config.subsampling
            )
            lstm_input = config.conv_channels
        self.lstm = nn.LSTM(
            lstm_input,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        directions = 2 if config.bidirectional else 1
        self.output = nn.Linear(directions * config.hidden_size, config.vocab_size)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Input frames (B,) -> output frames (B,) after subsampling."""
        for _ in range(self.config.subsampling.bit_length() - 1):
            lengths = (lengths - 1) // 2 + 1
        return lengths

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model.

        Args:
            features: (B, T, n_mels) float, zero-padded.
            lengths: (B,) int64 valid frames per item.

        Returns:
            log_probs: (B, T', vocab_size) log-softmax over tokens; frames past out_lengths
                are padding and must be ignored.
            out_lengths: (B,) int64 valid output frames, T' = max(out_lengths).
        """
        x = features
        if self.subsample is not None:
            x, lengths = self.subsample(x, lengths)
        # Packing makes each item's LSTM state independent of the batch's padding.
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed, _ = self.lstm(packed)
        x, _ = pad_packed_sequence(packed, batch_first=True)  # (B, max(lengths), H*dirs)
        logits = self.output(self.dropout(x))
        return logits.log_softmax(dim=-1), lengths
