"""The `sciml` command: help, `sciml solve` (a saved NeuralODE on initial states from .npy/.csv, checked
against the matrix exponential, and a clear error for every bad input), and the `sciml demo ude` main job."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import sciml
from sciml import layers as L
from sciml.cli import main

W = np.array([[-0.3, 1.1], [-0.9, -0.2]])
PNG = b"\x89PNG\r\n\x1a\n"


def _command():
    """The installed console script if it is on PATH, else the module (the same `main`)."""
    script = shutil.which("sciml")
    return [script] if script else [sys.executable, "-m", "sciml.cli"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A linear NeuralODE dy/dt = y @ W, whose solution is y0 @ expm(W t)."""
    node = sciml.NeuralODE(L.Dense(2, 2, use_bias=False), t_span=(0.0, 1.0), saveat=(0.5, 1.0),
                           rtol=1e-10, atol=1e-10)
    path = tmp_path_factory.mktemp("model") / "linear.safetensors"
    sciml.save(path, {"model": {"weight": jnp.asarray(W)}}, model=node)
    return str(path)


Y0 = np.array([[1.0, 0.5], [-0.5, 2.0], [0.0, 1.0]])


def exact(times):
    return np.stack([np.stack([y0 @ scipy.linalg.expm(W * t) for t in times]) for y0 in Y0])


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "demo" in out and "solve" in out
    for command in (["demo", "--help"], ["solve", "--help"]):
        with pytest.raises(SystemExit):
            main(command)
        assert "usage: sciml" in capsys.readouterr().out
    assert main([]) == 2   # no command: the help, and a usage error status


def test_the_console_script_runs():
    result = subprocess.run(_command() + ["--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "sciml" in result.stdout


def test_solve_npy_to_npy_with_times(model_file, tmp_path, capsys):
    np.save(tmp_path / "y0.npy", Y0)
    out = tmp_path / "ys.npy"
    assert main(["solve", model_file, "--y0", str(tmp_path / "y0.npy"), "--t", "0:1:5", "--out", str(out)]) == 0
    ys = np.load(out)
    assert ys.shape == (3, 5, 2)
    np.testing.assert_allclose(ys, exact(np.linspace(0, 1, 5)), rtol=1e-8, atol=1e-10)
    assert "3 trajectories x 5 times" in capsys.readouterr().out


def test_solve_csv_to_csv_with_the_models_own_times(model_file, tmp_path):
    np.savetxt(tmp_path / "y0.csv", Y0, delimiter=",")
    out = tmp_path / "ys.csv"
    assert main(["solve", model_file, "--y0", str(tmp_path / "y0.csv"), "--out", str(out)]) == 0
    with open(out) as file:
        assert file.readline().strip() == "trajectory,t,y0,y1"
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    assert rows.shape == (6, 4)
    np.testing.assert_array_equal(rows[:, 0], [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(rows[:, 1], [0.5, 1.0] * 3)
    np.testing.assert_allclose(rows[:, 2:].reshape(3, 2, 2), exact([0.5, 1.0]), rtol=1e-8, atol=1e-10)


def test_solve_one_state_and_a_time_list(model_file, tmp_path):
    np.save(tmp_path / "one.npy", Y0[0])
    out = tmp_path / "one_out.npy"
    assert main(["solve", model_file, "--y0", str(tmp_path / "one.npy"), "--t", "0,0.25,2", "--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out)[0], exact([0.0, 0.25, 2.0])[0], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("setup, args, message", [
    (None, ["--y0", "missing.npy"], "no such file"),
    (None, ["--y0", "states.txt"], "must be a .npy or .csv"),
    ("wide", ["--y0", "wide.csv"], "3 components"),
    ("text", ["--y0", "text.csv"], "could not be read as csv"),
    ("nan", ["--y0", "nan.npy"], "not finite"),
    ("good", ["--y0", "good.npy", "--t", "0:1"], "'T0:T1:N'"),
    ("good", ["--y0", "good.npy", "--t", "0,1,0.5"], "strictly increasing"),
    ("good", ["--y0", "good.npy", "--out", "result.txt"], ".npy or .csv"),
])
def test_solve_input_errors_name_the_problem(model_file, tmp_path, capsys, monkeypatch, setup, args, message):
    monkeypatch.chdir(tmp_path)
    if setup == "wide":
        np.savetxt("wide.csv", np.ones((2, 3)), delimiter=",")
    elif setup == "text":
        (tmp_path / "text.csv").write_text("x,y\n1,2\n")
    elif setup == "nan":
        np.save("nan.npy", np.array([[1.0, np.nan]]))
    elif setup == "good":
        np.save("good.npy", Y0)
    assert main(["solve", model_file] + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sciml solve: error:") and message in err


def test_solve_refuses_files_that_are_not_a_neural_ode(tmp_path, capsys):
    np.save(tmp_path / "y0.npy", Y0)
    plain = tmp_path / "params.safetensors"
    sciml.save(plain, {"w": jnp.ones(2)})
    assert main(["solve", str(plain), "--y0", str(tmp_path / "y0.npy")]) == 2
    assert "holds no model" in capsys.readouterr().err
    assert main(["solve", str(tmp_path / "y0.npy"), "--y0", str(tmp_path / "y0.npy")]) == 2
    assert "NumPy .npy file" in capsys.readouterr().err


def test_a_failed_solve_is_reported_and_nothing_written(tmp_path, capsys):
    node = sciml.NeuralODE(L.Dense(2, 2, use_bias=False), t_span=(0.0, 1.0), max_steps=3)
    path = tmp_path / "short.safetensors"
    sciml.save(path, {"model": {"weight": jnp.asarray(W)}}, model=node)
    np.save(tmp_path / "y0.npy", Y0)
    out = tmp_path / "never.npy"
    assert main(["solve", str(path), "--y0", str(tmp_path / "y0.npy"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "3 of 3 trajectories failed" in err and "max_steps" in err and not out.exists()


def _valid_png(path) -> bool:
    import matplotlib.image

    with open(path, "rb") as file:
        if file.read(8) != PNG:
            return False
    return matplotlib.image.imread(path).ndim == 3


@pytest.mark.slow
def test_sciml_demo_ude_fits_to_the_noise_and_recovers_the_interaction_terms(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(_command() + ["demo", "ude", "--out", str(out)], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "recovered interaction terms" in result.stdout
    assert "L-BFGS" in result.stderr and "step/s" in result.stderr        # the progress bars
    summary = json.loads((out / "summary.json").read_text())
    rmse, noise = np.array(summary["rmse"]), np.array(summary["noise_std"])
    assert np.all(rmse < 1.2 * noise), f"the fit (RMSE {rmse}) is not at the noise level {noise}"
    first, second = summary["terms"]
    assert set(first) == {"x*y"} and set(second) == {"x*y"}, summary["equations"]   # no spurious terms
    assert abs(first["x*y"] / -0.9 - 1) < 0.1 and abs(second["x*y"] / 0.8 - 1) < 0.1, summary["equations"]
    for name in ("fit.png", "extrapolation.png", "loss.png"):
        assert _valid_png(out / name)
