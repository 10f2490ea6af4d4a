"""Every example in `examples/` runs as a script in its reduced (`--quick`) mode and writes its figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "spiral_neural_ode.py": ["spiral.png", "loss.png", "spiral_node.safetensors"],
    "lotka_volterra_ude.py": ["fit.png", "extrapolation.png", "loss.png"],
    "stiff_neural_ode.py": ["stiff_neural_ode.png"],
    "solve_ivp_pipeline.py": ["solve_ivp_pipeline.png"],
    "dae_reactor_ude.py": ["dae_reactor.png"],
}
PNG = b"\x89PNG\r\n\x1a\n"


def test_every_example_is_listed():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(EXAMPLES)


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs_quick_and_writes_its_figure(script, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "SCIML_X64"}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--quick", "--no-progress",
                             "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, f"{script} failed:\n{result.stderr[-4000:]}"
    for name in EXAMPLES[script]:
        path = tmp_path / name
        assert path.exists(), f"{script} did not write {name}"
        if name.endswith(".png"):
            import matplotlib.image

            assert path.read_bytes()[:8] == PNG
            image = matplotlib.image.imread(path)
            assert image.ndim == 3 and min(image.shape[:2]) > 100
