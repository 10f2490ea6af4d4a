"""BatchNorm: normalisation by batch statistics while training, by running statistics in test mode."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from sciml.layers._core import Layer
from sciml.layers._mode import TRAINING
from sciml.layers._norm import abs2
from sciml.layers._validate import check_features, positive_int


@dataclasses.dataclass(frozen=True)
class BatchNorm(Layer):
    """Normalises each feature (the last axis of ``x``) over all other axes.

    In training mode ``y = (x - batch_mean) / sqrt(batch_var + eps) * scale + bias`` and the running
    statistics move towards the batch's: ``running = (1 - momentum) * running + momentum * batch``
    (PyTorch's and Lux's convention; the running variance uses the unbiased batch variance). In test
    mode (:func:`testmode`) the running statistics are used and the state is left unchanged. The
    layer starts in training mode; the flag may be traced under ``jax.jit``.

    The output dtype is the promotion of ``x``, the parameters and the running statistics. The
    running statistics keep the dtype ``init`` gave them (a state never changes dtype between calls,
    so it can be a ``lax.scan`` carry); complex input needs a complex ``init`` dtype.

    Attributes:
        num_features: size of the last axis of ``x``.
        momentum: weight of the batch statistics in the running ones.
        eps: added to the variance.
        affine: whether to learn ``scale`` and ``bias``.

    Parameters:
        scale: (num_features,) if affine
        bias: (num_features,) if affine

    State:
        running_mean: (num_features,)
        running_var: (num_features,)
        training: ()

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from sciml import layers as L
        >>> layer = L.BatchNorm(3)
        >>> params, state = layer.init(jax.random.key(0))
        >>> x = jax.random.normal(jax.random.key(1), (16, 3))
        >>> y, state = layer.apply(params, x, state)             # training: batch statistics
        >>> y_test, _ = layer.apply(params, x, L.testmode(state))  # test: running statistics
        >>> y.shape, y_test.shape
        ((16, 3), (16, 3))
    """

    num_features: int
    momentum: float = 0.1
    eps: float = 1e-5
    affine: bool = True

    stateful = True

    def __post_init__(self):
        super().__post_init__()
        positive_int(self, "num_features")
        if not 0 <= self.momentum <= 1:
            raise ValueError(f"`BatchNorm(momentum=...)` must be in [0, 1]; got {self.momentum!r}.")

    def init(self, key, dtype=jnp.float32):
        params = {}
        if self.affine:
            params = {"scale": jnp.ones(self.num_features, dtype),
                      "bias": jnp.zeros(self.num_features, dtype)}
        real = jnp.finfo(dtype).dtype  # the variance of complex data is real
        state = {"running_mean": jnp.zeros(self.num_features, dtype),
                 "running_var": jnp.ones(self.num_features, real),
                 TRAINING: jnp.asarray(True)}
        return params, state

    def apply(self, params, x, state):
        check_features(self, x, self.num_features, "num_features")
        axes = tuple(range(jnp.ndim(x) - 1))
        count = int(np.prod([jnp.shape(x)[a] for a in axes]))
        batch_mean = jnp.mean(x, axis=axes)
        batch_var = jnp.mean(abs2(x - batch_mean), axis=axes)
        training = state[TRAINING]

        mean = jnp.where(training, batch_mean, state["running_mean"])
        var = jnp.where(training, batch_var, state["running_var"])
        y = (x - mean) * jax.lax.rsqrt(var + self.eps)
        if self.affine:
            y = y * params["scale"] + params["bias"]

        unbiased = batch_var * (count / max(count - 1, 1))
        new_state = {
            "running_mean": self._update(state["running_mean"], batch_mean, training, "running_mean"),
            "running_var": self._update(state["running_var"], unbiased, training, "running_var"),
            TRAINING: training,
        }
        return y, new_state

    def _update(self, running, batch, training, name):
        """The running statistic moved towards ``batch`` in training mode, kept in its own dtype."""
        if not jnp.can_cast(batch.dtype, running.dtype, casting="same_kind"):
            raise TypeError(
                f"{self.describe()} got {batch.dtype} input, but its `{name}` is {running.dtype}: "
                f"storing the batch statistics would drop their imaginary part. Initialise the "
                f"layer with a complex dtype, e.g. `init(key, dtype=jnp.complex64)`."
            )
        moved = (1 - self.momentum) * running + self.momentum * batch
        return jnp.where(training, moved, running).astype(running.dtype)
