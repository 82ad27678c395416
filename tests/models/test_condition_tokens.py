"""Cross-attention tokens: packed after the condition vector, read back by the UNet."""

from __future__ import annotations

import json

import pytest
import torch

from polymodal.data.batch import Batch
from polymodal.data.text import TextEmbedder
from polymodal.errors import ConfigError
from polymodal.models.condition import MAX_NGRAM_TOKENS, ConditionEncoder
from polymodal.models.unet import UNet

pytestmark = pytest.mark.usefixtures("one_thread")

TOKENS, WIDTH, VECTOR = 3, 6, 4


def packed_unet(**overrides) -> UNet:
    kwargs = dict(image_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2),
                  cond_dim=VECTOR + TOKENS * WIDTH, cross_attn_dim=WIDTH,
                  context_tokens=TOKENS, cross_attention_resolutions=(8, 4))
    kwargs.update(overrides)
    net = UNet(**kwargs)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights in the zero-initialised layers too
        for p in net.parameters():
            if not p.any():
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return net.eval()


def pack(vector: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return torch.cat([vector, tokens.flatten(1)], dim=1)  # (B, VECTOR + TOKENS * WIDTH)


def test_packed_tokens_are_attended_and_zero_tokens_are_absent():
    net = packed_unet()
    x, t = torch.randn(2, 1, 8, 8), torch.full((2,), 0.5)
    vector, tokens = torch.randn(2, VECTOR), torch.randn(2, TOKENS, WIDTH)
    with torch.no_grad():
        full = net(x, t, pack(vector, tokens))
        other = tokens.clone()
        other[:, 1] = torch.randn(2, WIDTH)
        assert not torch.allclose(full, net(x, t, pack(vector, other)))
        # An all-zero token is masked out: the same as a UNet that has no such token.
        dropped = tokens.clone()
        dropped[:, 2] = 0.0
        shorter = packed_unet(context_tokens=TOKENS - 1, cond_dim=VECTOR + (TOKENS - 1) * WIDTH)
        shorter.load_state_dict(net.state_dict())  # token count is not in any weight's shape
        assert torch.allclose(net(x, t, pack(vector, dropped)),
                              shorter(x, t, pack(vector, tokens[:, :2])), atol=1e-6)
        assert not torch.allclose(full, net(x, t, pack(vector, dropped)))
        # The all-zero condition is the null condition, as without tokens.
        assert torch.equal(net(x, t, torch.zeros(2, net.cond_dim)), net(x, t, None))


def test_a_packed_unet_round_trips_through_its_config():
    net = packed_unet()
    config = json.loads(json.dumps(net.config()))
    assert config["context_tokens"] == TOKENS and config["cross_attention_resolutions"] == [8, 4]
    rebuilt = UNet(**config)
    rebuilt.load_state_dict(net.state_dict())
    rebuilt.eval()
    x, t, cond = torch.randn(2, 1, 8, 8), torch.rand(2), torch.randn(2, net.cond_dim)
    with torch.no_grad():
        assert torch.equal(rebuilt(x, t, cond), net(x, t, cond))
    # Configs saved before tokens existed have neither key, and build the same UNet as then.
    old = UNet(image_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2), cond_dim=4)
    assert "context_tokens" not in old.config() and not any(
        "cross" in name for name, _ in old.named_parameters())


def test_tokens_need_room_in_the_condition():
    with pytest.raises(ConfigError, match="context_tokens=3"):
        packed_unet(cond_dim=TOKENS * WIDTH)
    with pytest.raises(ConfigError, match="cross_attention_resolutions"):
        packed_unet(cross_attention_resolutions=(5,))


def caption_encoder(context_dim: int, kind: str = "hashed"):
    embedder = TextEmbedder(kind, hashed_dim=128)
    spec = {"columns": {"caption": "text"}, "numeric_index": {}, "categorical_index": {},
            "categorical_cardinalities": {}, "multilabel_slices": {},
            "text_dims": {"caption": embedder.dim}, "image_shapes": {}, "audio_shapes": {},
            "text_ngram_slices": {"caption": embedder.ngram_slice()}}
    torch.manual_seed(0)
    return ConditionEncoder(spec, out_dim=8, context_dim=context_dim), embedder


def caption_batch(embedder, captions, present) -> Batch:
    text = torch.from_numpy(embedder.embed(captions))
    return Batch(text={"caption": text}, mask={"caption": torch.tensor(present)},
                 index=torch.arange(len(captions)))


def test_a_caption_gives_one_token_per_ngram_and_absent_rows_none():
    encoder, embedder = caption_encoder(context_dim=5)
    assert encoder.num_tokens == 1 + min(128, MAX_NGRAM_TOKENS)
    assert encoder.width == 8 + encoder.num_tokens * 5
    captions = ["a red star", "a small blue square at the top left", "a red star"]
    batch = caption_batch(embedder, captions, [True, True, False])
    with torch.no_grad():
        out = encoder(batch)  # (B, width)
    tokens = out[:, 8:].reshape(3, encoder.num_tokens, 5)
    present = tokens.ne(0).any(-1).sum(1).tolist()  # tokens per row
    buckets = (torch.from_numpy(embedder.embed(captions)) > 0).sum(1).tolist()
    assert present[:2] == [1 + min(b, MAX_NGRAM_TOKENS) for b in buckets[:2]]
    assert present[2] == 0 and not out[2].any()  # an absent caption: the null condition
    assert present[1] > present[0]  # more words, more tokens
    # The config carries the token width; without tokens it stays as before.
    rebuilt = ConditionEncoder.from_config(json.loads(json.dumps(encoder.config())))
    rebuilt.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt(batch), out)
    plain, _ = caption_encoder(context_dim=0)
    assert "context_dim" not in plain.config() and plain.width == 8 and plain.num_tokens == 0
