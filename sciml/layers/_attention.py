"""MultiHeadAttention: scaled dot-product self-attention over a sequence axis."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from sciml.layers._compact import compact
from sciml.layers._core import Layer
from sciml.layers._dense import Dense
from sciml.layers._validate import check_features, positive_int


@compact
class MultiHeadAttention(Layer):
    """Self-attention: ``x`` of shape ``(..., seq, dim)`` attends to itself; ``y`` has the same shape.

    Each of ``num_heads`` heads projects ``x`` to queries, keys and values of size ``head_dim``,
    weights the values by ``softmax(q k^T / sqrt(head_dim))`` over the sequence, and the heads'
    results are concatenated and projected back to ``dim``. Leading axes before ``seq`` are batch
    axes. Scores and softmax are computed in the promoted dtype of ``x`` and the parameters.

    Attributes:
        dim: size of the last axis of ``x``.
        num_heads: number of heads.
        head_dim: size of each head; by default ``dim // num_heads`` (then ``dim`` must divide).
        use_bias: whether the projections have biases.
        causal: if True, position ``i`` attends only to positions ``<= i``.

    Parameters:
        query.weight: (dim, num_heads * head_size)
        query.bias: (num_heads * head_size,) if use_bias
        key.weight: (dim, num_heads * head_size)
        key.bias: (num_heads * head_size,) if use_bias
        value.weight: (dim, num_heads * head_size)
        value.bias: (num_heads * head_size,) if use_bias
        out.weight: (num_heads * head_size, dim)
        out.bias: (dim,) if use_bias

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> attn = L.MultiHeadAttention(dim=8, num_heads=2, causal=True)
        >>> params, state = attn.init(jax.random.key(0))
        >>> attn(params, jnp.ones((3, 5, 8))).shape      # (batch, seq, dim)
        (3, 5, 8)
    """

    dim: int
    num_heads: int
    head_dim: int | None = None
    use_bias: bool = True
    causal: bool = False

    def __post_init__(self):
        super().__post_init__()
        positive_int(self, "dim")
        positive_int(self, "num_heads")
        if self.head_dim is None and self.dim % self.num_heads:
            raise ValueError(
                f"`MultiHeadAttention(dim={self.dim}, num_heads={self.num_heads})`: dim is not a "
                f"multiple of num_heads, so the head size cannot default to dim // num_heads. "
                f"Pass `head_dim=` explicitly."
            )
        if self.head_dim is not None:
            positive_int(self, "head_dim")

    @property
    def head_size(self) -> int:
        """The size of each head: ``head_dim``, or ``dim // num_heads`` by default."""
        return self.dim // self.num_heads if self.head_dim is None else self.head_dim

    def setup(self):
        inner = self.num_heads * self.head_size
        self.query = Dense(self.dim, inner, use_bias=self.use_bias)
        self.key = Dense(self.dim, inner, use_bias=self.use_bias)
        self.value = Dense(self.dim, inner, use_bias=self.use_bias)
        self.out = Dense(inner, self.dim, use_bias=self.use_bias)

    def forward(self, x):
        check_features(self, x, self.dim, "dim")
        if jnp.ndim(x) < 2 or jnp.iscomplexobj(x):
            raise ValueError(
                f"{self.describe()} expects real input of shape (..., seq, dim); got shape "
                f"{jnp.shape(x)} and dtype {jnp.result_type(x)}. Add a sequence axis for a single "
                f"token, e.g. `x[None]`."
            )
        q, k, v = (self._heads(project(x)) for project in (self.query, self.key, self.value))
        scores = jnp.einsum("...qhd,...khd->...hqk", q, k) / math.sqrt(self.head_size)
        if self.causal:
            seq = x.shape[-2]
            allowed = jnp.tril(jnp.ones((seq, seq), bool))
            scores = jnp.where(allowed, scores, jnp.finfo(scores.dtype).min)
        weights = jax.nn.softmax(scores, axis=-1)
        heads = jnp.einsum("...hqk,...khd->...qhd", weights, v)
        return self.out(heads.reshape(heads.shape[:-2] + (self.num_heads * self.head_size,)))

    def _heads(self, y):
        return y.reshape(y.shape[:-1] + (self.num_heads, self.head_size))

    def describe(self) -> str:
        causal = ", causal" if self.causal else ""
        return f"MultiHeadAttention(dim={self.dim}, heads={self.num_heads}{causal})"
