"""The acoustic model: conv subsampling -> (Bi)LSTM -> linear -> CTC log-probs.

A plain `nn.Module` that imports only torch; its constructor arguments are its whole
description (`ModelConfig`), saved with the weights so a model file rebuilds itself.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# Parameter names of one layer and direction of `nn.LSTM`, in the order `torch.lstm` takes them.
WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


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


def subsampled_length(frames: torch.Tensor | int, subsampling: int) -> torch.Tensor | int:
    """Output frames of `ConvSubsampling` (or of no convs, `subsampling` 1) for `frames` input
    frames: each stride-2 conv (kernel 3, padding 1) turns n frames into ceil(n / 2).

    Args:
        frames: (B,) int64 tensor or an int.
        subsampling: 1, 2 or 4.

    Returns:
        The same type and shape as `frames`.
    """
    for _ in range(subsampling.bit_length() - 1):  # log2(subsampling) convs
        frames = (frames - 1) // 2 + 1
    return frames


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
            lengths = subsampled_length(lengths, 2)  # one stride-2 conv
            # `asr.features.valid_mask`, written out: this module imports only torch.
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
        return subsampled_length(lengths, self.config.subsampling)

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
        x = x[:, : int(lengths.max())]
        if bool((lengths == x.shape[1]).all()):
            x, _ = self.lstm(x)  # no padding: nothing to keep out of the states
        elif x.is_cuda or not isinstance(self.lstm, nn.LSTM):
            # Packing makes each item's LSTM state independent of the batch's padding; cuDNN
            # runs packed batches fast, and a quantised LSTM has no weights to run by hand.
            cpu_lengths = lengths.cpu()
            packed = pack_padded_sequence(x, cpu_lengths, batch_first=True, enforce_sorted=False)
            x, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
        else:
            x = self._padded_lstm(x, lengths)
        logits = self.output(self.dropout(x))  # (B, T', H*dirs) -> (B, T', V)
        return logits.log_softmax(dim=-1), lengths

    def _padded_lstm(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`self.lstm` on a padded batch without packing, layer by layer and direction by direction.

        On CPU, packed sequences run one small matrix product per time step over a shrinking
        batch; this runs each direction over the whole padded batch instead (faster to train,
        benchmarks/bench_lstm.py). Padding sits after each item's last frame, so it never
        reaches the forward direction's valid outputs; the backward direction runs on each
        item reversed within its own length, so its padding comes last too.

        Args:
            x: (B, T, input) with T = max(lengths).
            lengths: (B,) int64 valid frames.

        Returns:
            (B, T, H * directions), equal to the packed computation on the valid frames.
        """
        lstm = self.lstm
        steps = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
        last = lengths.to(x.device)[:, None] - 1  # (B, 1)
        # Reversing each item within its length: index t -> length-1-t; padding stays put.
        reverse = torch.where(steps <= last, last - steps, steps)[:, :, None]  # (B, T, 1)
        for layer in range(lstm.num_layers):
            outputs = []
            for direction in range(2 if lstm.bidirectional else 1):
                suffix = f"l{layer}" + ("_reverse" if direction else "")
                weights = [getattr(lstm, f"{name}_{suffix}") for name in WEIGHT_NAMES]
                inputs = x if direction == 0 else x.gather(1, reverse.expand_as(x))
                state = x.new_zeros(1, x.shape[0], lstm.hidden_size)
                train = self.training
                y = torch.lstm(inputs, (state, state), weights, True, 1, 0.0, train, False, True)[0]
                outputs.append(y if direction == 0 else y.gather(1, reverse.expand_as(y)))
            x = torch.cat(outputs, dim=-1)  # (B, T, H * directions)
            if layer < lstm.num_layers - 1:
                x = nn.functional.dropout(x, lstm.dropout, self.training)
        return x
