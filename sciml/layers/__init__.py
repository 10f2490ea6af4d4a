"""Pure-function layers with explicit parameters and state (Lux semantics).

A layer is an immutable, hashable description (hyper-parameters only). ``init(key, dtype)`` returns
``(params, state)`` as nested dicts of arrays, ``apply(params, x, state)`` returns ``(y, state)`` and
``layer(params, x)`` is the shorthand for stateless layers. A layer never converts its input: the
output dtype is JAX's promotion of the input and the parameters.
"""

from sciml.layers._activations import register_activation
from sciml.layers._attention import MultiHeadAttention
from sciml.layers._batchnorm import BatchNorm
from sciml.layers._chain import MLP, Chain
from sciml.layers._combinators import Parallel, SkipConnection
from sciml.layers._compact import compact
from sciml.layers._connections import register_connection
from sciml.layers._core import Layer, from_config
from sciml.layers._dense import Dense
from sciml.layers._dropout import Dropout
from sciml.layers._embedding import Embedding
from sciml.layers._initializers import register_initializer
from sciml.layers._mode import testmode, trainmode
from sciml.layers._norm import LayerNorm, RMSNorm
from sciml.layers._params import cast, count, flatten
from sciml.layers._scale import Scale
from sciml.layers._wrapped import WrappedFunction

__all__ = [
    # protocol and description
    "Layer", "from_config", "compact",
    # layers
    "Dense", "MLP", "Chain", "Parallel", "SkipConnection", "WrappedFunction", "Scale",
    "LayerNorm", "RMSNorm", "BatchNorm", "Dropout", "Embedding", "MultiHeadAttention",
    # state mode
    "trainmode", "testmode",
    # params utilities
    "flatten", "count", "cast",
    # names for functions given as hyper-parameters
    "register_activation", "register_initializer", "register_connection",
]
