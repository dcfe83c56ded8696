import pytest
import torch

from asr.model import AcousticModel, ConvSubsampling, ModelConfig, subsampled_length


@pytest.mark.parametrize(
    ("subsampling", "bidirectional"), [(1, True), (2, True), (4, True), (4, False)]
)
def test_padding_invariance(subsampling, bidirectional):
    """Items in a padded batch get exactly the outputs they get alone."""
    torch.manual_seed(0)
    config = ModelConfig(
        subsampling=subsampling,
        bidirectional=bidirectional,
        conv_channels=32,
        hidden_size=24,
        num_layers=2,
    )
    model = AcousticModel(config).eval()
    lengths = torch.tensor([37, 100, 64])
    feats = torch.randn(3, 100, 80)
    for i, n in enumerate(lengths):
        feats[i, n:] = 0
    batched, out_lengths = model(feats, lengths)
    assert batched.shape == (3, int(out_lengths.max()), 29)
    for i, n in enumerate(lengths.tolist()):
        alone, alone_len = model(feats[i : i + 1, :n], lengths[i : i + 1])
        assert alone_len.item() == out_lengths[i].item() == -(-n // subsampling)
        torch.testing.assert_close(batched[i, : alone_len.item()], alone[0], atol=1e-5, rtol=1e-5)


def test_log_probs_normalised_and_output_lengths():
    model = AcousticModel(ModelConfig(hidden_size=16, conv_channels=16, num_layers=1)).eval()
    log_probs, lengths = model(torch.randn(2, 51, 80), torch.tensor([51, 20]))
    assert lengths.tolist() == [26, 10] == model.output_lengths(torch.tensor([51, 20])).tolist()
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 26))


def test_rejects_bad_subsampling():
    with pytest.raises(ValueError, match="subsampling"):
        AcousticModel(ModelConfig(subsampling=3))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_padded_lstm_matches_packed(bidirectional):
    """The CPU path without packing gives the packed LSTM's outputs and gradients."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(0)
    config = ModelConfig(subsampling=1, hidden_size=24, num_layers=3, dropout=0.0)
    config = ModelConfig(**{**config.to_dict(), "bidirectional": bidirectional})
    model = AcousticModel(config).train()
    lengths = torch.tensor([17, 40, 3, 40])
    x = torch.randn(4, 40, 80, requires_grad=True)

    dense = model._padded_lstm(x, lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    reference, _ = pad_packed_sequence(model.lstm(packed)[0], batch_first=True)
    valid = (torch.arange(40)[None, :] < lengths[:, None])[:, :, None]
    torch.testing.assert_close(dense * valid, reference, atol=1e-5, rtol=1e-5)

    weights = [model.lstm.weight_hh_l0, model.lstm.weight_ih_l1]
    if bidirectional:
        weights.append(model.lstm.weight_ih_l0_reverse)
    grads_dense = torch.autograd.grad((dense * valid).square().sum(), weights)
    grads_packed = torch.autograd.grad(reference.square().sum(), weights)
    torch.testing.assert_close(grads_dense, grads_packed, atol=1e-4, rtol=1e-4)


def test_quantised_model_runs_padded_batches():
    """A dynamically quantised LSTM has no float weights to run by hand: it is packed."""
    torch.manual_seed(0)
    model = AcousticModel(ModelConfig(hidden_size=24, conv_channels=32, num_layers=2)).eval()
    quantised = torch.ao.quantization.quantize_dynamic(model, {torch.nn.LSTM, torch.nn.Linear})
    feats, lengths = torch.randn(2, 60, 80), torch.tensor([60, 31])
    feats[1, 31:] = 0
    batched, out_lengths = quantised(feats, lengths)
    alone, _ = quantised(feats[1:, :31], lengths[1:])
    n = int(out_lengths[1])
    # int8 activations are scaled per batch, so the batch and the item alone differ a little
    torch.testing.assert_close(batched[1, :n], alone[0], atol=2e-2, rtol=1e-2)


@pytest.mark.parametrize("subsampling", [2, 4])
def test_subsampled_length_is_what_the_convs_output(subsampling):
    """`asr check-data` counts output frames with the integer form of the model's formula."""
    convs = ConvSubsampling(80, 8, subsampling)
    for n in range(1, 12):
        x, lengths = convs(torch.randn(1, n, 80), torch.tensor([n]))
        assert subsampled_length(n, subsampling) == x.shape[1] == int(lengths[0])
    assert subsampled_length(7, 1) == 7
