"""DESIGN.md principle 3: float64 works out of the box; SCIML_X64=0 opts out and then refuses to truncate."""

import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np

import sciml


def test_import_turns_x64_on():
    assert sciml.x64_enabled()
    assert jnp.asarray(np.ones(3, np.float64)).dtype == jnp.float64


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120)


def test_opt_out_keeps_x64_off_and_refuses_float64_input():
    result = _run(
        """
        import numpy as np
        import sciml
        from sciml._config import check_precision
        assert not sciml.x64_enabled()
        check_precision(np.ones(2, np.float32))          # float32 passes
        try:
            check_precision({"w": np.ones(2, np.float64)}, name="y0")
        except sciml.PrecisionError as err:
            print("RAISED:", err)
        """,
        SCIML_X64="0",
    )
    assert result.returncode == 0, result.stderr
    assert "RAISED:" in result.stdout
    assert "`y0` has dtype float64" in result.stdout and "SCIML_X64" in result.stdout
