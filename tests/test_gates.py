"""The step-by-step LSTM reproduces nn.LSTM, and its gates are what the cell equations say."""

import pytest
import torch
from torch import nn

from asr.gates import run_lstm
from asr.model import AcousticModel, ModelConfig

TOLERANCE = 1e-5


@pytest.mark.parametrize(
    ("num_layers", "bidirectional", "batch_first"),
    [(1, False, True), (1, True, False), (3, True, True), (2, False, False)],
)
def test_outputs_match_nn_lstm(num_layers, bidirectional, batch_first):
    torch.manual_seed(num_layers + 10 * bidirectional)
    lstm = nn.LSTM(7, 5, num_layers=num_layers, bidirectional=bidirectional).eval()
    lstm.batch_first = batch_first
    # Larger-than-default weights push gates towards 0 and 1, where mistakes show most.
    for p in lstm.parameters():
        nn.init.uniform_(p, -1.0, 1.0)
    x = torch.randn(13, 7)
    expected, _ = lstm(x)  # unbatched (T, F) input: batch_first does not apply
    trace = run_lstm(lstm, x)
    directions = 2 if bidirectional else 1
    assert trace.output.shape == expected.shape == (13, directions * 5)
    torch.testing.assert_close(trace.output, expected, atol=TOLERANCE, rtol=0)
    assert trace.gates.shape == (num_layers, directions, 3, 13, 5)
    assert trace.cells.shape == (num_layers, directions, 13, 5)
    assert ((trace.gates > 0) & (trace.gates < 1)).all()


def test_gates_follow_the_cell_equation():
    """h_t = o_t * tanh(c_t) per direction: the stored gates are the ones that made h."""
    torch.manual_seed(1)
    lstm = nn.LSTM(4, 3, bidirectional=True).eval()
    trace = run_lstm(lstm, torch.randn(9, 4))
    output_gate = trace.gates[0, :, 2]  # (D, T, H)
    h = output_gate * trace.cells[0].tanh()  # (D, T, H)
    h = h.permute(1, 0, 2).reshape(9, 6)  # (T, D * H): [forward, backward] as nn.LSTM
    torch.testing.assert_close(h, trace.output, atol=TOLERANCE, rtol=0)
    # Forward cell at t=0 starts from c=0: c_0 = i_0 * g_0 with |g_0| < 1.
    assert (trace.cells[0, 0, 0].abs() < trace.gates[0, 0, 0, 0]).all()


def test_matches_the_acoustic_models_packed_batch():
    """Valid frames of a padded, packed batch equal one unpadded sequence run alone."""
    torch.manual_seed(2)
    config = ModelConfig(n_mels=6, conv_channels=8, hidden_size=5, num_layers=2, dropout=0.0)
    model = AcousticModel(config).eval()
    feats, lengths = torch.randn(2, 20, 6), torch.tensor([20, 11])
    with torch.no_grad():
        x, sub_lengths = model.subsample(feats, lengths)  # (B, T', C)
        packed = nn.utils.rnn.pack_padded_sequence(x, sub_lengths, batch_first=True)
        expected, _ = nn.utils.rnn.pad_packed_sequence(model.lstm(packed)[0], batch_first=True)
    short = int(sub_lengths[1])
    trace = run_lstm(model.lstm, x[1, :short])
    torch.testing.assert_close(trace.output, expected[1, :short], atol=TOLERANCE, rtol=0)


def test_rejects_unsupported_lstms():
    with pytest.raises(ValueError, match="proj_size"):
        run_lstm(nn.LSTM(3, 4, proj_size=2), torch.randn(2, 3))
