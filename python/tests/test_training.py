"""A tiny causal transformer trained a few steps on CPU: flashdist in place of torch's SDPA gives
the same losses and the same weights, within float32 rounding."""
import torch
import torch.nn.functional as F

import flashdist

VOCAB, WIDTH, HEADS, LAYERS, SEQLEN, BATCH = 48, 64, 4, 2, 24, 4


def sdpa(q, k, v):
    """torch's attention on (batch, seqlen, heads, head_dim); square, so top-left causal is bottom-right."""
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                          is_causal=True).transpose(1, 2)


def flash(q, k, v):
    return flashdist.flash_attn_func(q, k, v, causal=True)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = torch.nn.LayerNorm(WIDTH), torch.nn.LayerNorm(WIDTH)
        self.qkv, self.proj = torch.nn.Linear(WIDTH, 3 * WIDTH), torch.nn.Linear(WIDTH, WIDTH)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(WIDTH, 4 * WIDTH), torch.nn.GELU(), torch.nn.Linear(4 * WIDTH, WIDTH))

    def forward(self, x, attention):
        # q, k, v are strided views into one projection: non-contiguous inputs, as in real models.
        q, k, v = self.qkv(self.norm1(x)).unflatten(-1, (3, HEADS, WIDTH // HEADS)).unbind(2)
        x = x + self.proj(attention(q, k, v).flatten(2))
        return x + self.mlp(self.norm2(x))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, WIDTH)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(LAYERS))
        self.head = torch.nn.Linear(WIDTH, VOCAB)

    def forward(self, tokens, attention):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, attention)
        return self.head(x)


def train(attention, steps=6):
    torch.manual_seed(0)
    model = Model()
    # SGD, not Adam: Adam would scale up the rounding noise in gradients that are exactly 0 in
    # exact arithmetic (the key bias), which says nothing about attention.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    # Counting sequences from random starts: learnable, so the loss falls within a few steps.
    starts = torch.randint(0, VOCAB, (steps, BATCH, 1), generator=torch.Generator().manual_seed(1))
    data = (starts + torch.arange(SEQLEN + 1)) % VOCAB
    losses = []
    for tokens in data:
        logits = model(tokens[:, :-1], attention)
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, model


def test_training_matches_sdpa():
    flash_losses, flash_model = train(flash)
    sdpa_losses, sdpa_model = train(sdpa)
    assert flash_losses[-1] < flash_losses[0] - 0.2  # it learns
    torch.testing.assert_close(torch.tensor(flash_losses), torch.tensor(sdpa_losses), rtol=1e-5, atol=1e-5)
    for a, b in zip(flash_model.parameters(), sdpa_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
