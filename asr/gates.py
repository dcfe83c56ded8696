"""The LSTM's gates, made visible: a step-by-step LSTM that reproduces `nn.LSTM` exactly.

`nn.LSTM` runs fused cuDNN/ATen kernels and returns only hidden states; the gates that decide
what the cell forgets (f), takes in (i) and shows (o) are never exposed. `run_lstm` recomputes
the same network from its weights, one time step at a time, and keeps the gate activations.

PyTorch's layout, per layer l and direction (suffix "_reverse" for the backward one):
``weight_ih_l{l}`` (4H, F), ``weight_hh_l{l}`` (4H, H), ``bias_ih_l{l}`` and ``bias_hh_l{l}``
(4H,), the 4H rows stacked in gate order i, f, g, o. Per step:

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      f, o likewise
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)
    c' = f * c + i * g;  h' = o * tanh(c')

The reverse direction reads the (valid, unpadded) sequence back to front and its outputs are
flipped back, so frame t of both directions describes input frame t. Layer l > 0 reads the
concatenated [forward, backward] outputs of layer l - 1. Inter-layer dropout is not applied
(inspection runs the model in eval mode, where `nn.LSTM` skips it too).
"""

from dataclasses import dataclass

import torch
from torch import nn

GATE_NAMES = ("input", "forget", "output")  # the order of `LSTMTrace.gates`' gate axis
DIRECTION_NAMES = ("forward", "backward")


@dataclass
class LSTMTrace:
    """What `run_lstm` computed for one sequence.

    Attributes:
        output: (T, D * H) the last layer's hidden states, as `nn.LSTM` returns them.
        gates: (L, D, 3, T, H) sigmoid activations of the input, forget and output gates
            (order `GATE_NAMES`) per layer L, direction D, time step T and unit H.
        cells: (L, D, T, H) cell states c_t.
    """

    output: torch.Tensor
    gates: torch.Tensor
    cells: torch.Tensor


def _run_direction(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LSTM layer and direction over x, front to back, from zero state.

    Args:
        x: (T, F) inputs; w_ih: (4H, F); w_hh: (4H, H); bias: (4H,) = bias_ih + bias_hh.

    Returns:
        h: (T, H) hidden states; gates: (3, T, H) i, f, o activations; c: (T, H) cell states.
    """
    steps, hidden = x.shape[0], w_hh.shape[1]
    # The input projection does not depend on the recurrence: do all steps in one matmul.
    projected = x @ w_ih.T + bias  # (T, 4H)
    h = x.new_zeros(hidden)
    c = x.new_zeros(hidden)
    hs, cs, gate_steps = [], [], []
    for t in range(steps):
        i, f, g, o = (projected[t] + w_hh @ h).chunk(4)  # PyTorch's row order: i, f, g, o
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c + i * g
        h = o * c.tanh()
        hs.append(h)
        cs.append(c)
        gate_steps.append(torch.stack((i, f, o)))  # (3, H), order GATE_NAMES
    if steps == 0:
        empty = x.new_zeros(0, hidden)
        return empty, x.new_zeros(3, 0, hidden), empty
    return torch.stack(hs), torch.stack(gate_steps, dim=1), torch.stack(cs)


@torch.no_grad()
def run_lstm(lstm: nn.LSTM, x: torch.Tensor) -> LSTMTrace:
    """Recompute `lstm` on one unpadded sequence, keeping every gate activation.

    Args:
        lstm: a trained `nn.LSTM` (any layers, uni- or bidirectional, batch_first or not;
            no projections).
        x: (T, F) the sequence's valid frames only (reverse directions start at its end).

    Returns:
        The outputs (equal to `lstm(x)[0]` to float rounding), gates and cell states.
    """
    if lstm.proj_size:
        raise ValueError("LSTMs with projections (proj_size > 0) are not supported")
    if not lstm.bias:
        raise ValueError("LSTMs without biases are not supported")
    directions = 2 if lstm.bidirectional else 1
    layer_input = x
    all_gates, all_cells = [], []
    for layer in range(lstm.num_layers):
        outputs, layer_gates, layer_cells = [], [], []
        for direction in range(directions):
            suffix = f"l{layer}" + ("_reverse" if direction else "")
            weights = (
                getattr(lstm, f"weight_ih_{suffix}"),
                getattr(lstm, f"weight_hh_{suffix}"),
                getattr(lstm, f"bias_ih_{suffix}") + getattr(lstm, f"bias_hh_{suffix}"),
            )
            seq = layer_input.flip(0) if direction else layer_input  # (T, F), time reversed
            h, gates, c = _run_direction(seq, *weights)
            if direction:  # back to input order: frame t describes input frame t
                h, gates, c = h.flip(0), gates.flip(1), c.flip(0)
            outputs.append(h)
            layer_gates.append(gates)
            layer_cells.append(c)
        layer_input = torch.cat(outputs, dim=-1)  # (T, D * H): [forward, backward]
        all_gates.append(torch.stack(layer_gates))  # (D, 3, T, H)
        all_cells.append(torch.stack(layer_cells))  # (D, T, H)
    return LSTMTrace(layer_input, torch.stack(all_gates), torch.stack(all_cells))
