"""The `sciml` command: help, `sciml solve` (a saved NeuralODE on initial states from .npy/.csv, checked
against the matrix exponential, in the model's dtype, written whole or not at all, and one clear line for
every bad input), and the `sciml demo` jobs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

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


def _linear_model(path, dtype=jnp.float64, tol=1e-10) -> str:
    """A linear NeuralODE dy/dt = y @ W (parameters of ``dtype``), whose solution is y0 @ expm(W t)."""
    node = sciml.NeuralODE(L.Dense(2, 2, use_bias=False), t_span=(0.0, 1.0), saveat=(0.5, 1.0), rtol=tol, atol=tol)
    sciml.save(path, {"model": {"weight": jnp.asarray(W, dtype)}}, model=node)
    return str(path)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return _linear_model(tmp_path_factory.mktemp("model") / "linear.safetensors")


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


def test_solve_one_state_and_a_time_list(model_file, tmp_path, capsys):
    np.save(tmp_path / "one.npy", Y0[0])
    out = tmp_path / "one_out.npy"
    assert main(["solve", model_file, "--y0", str(tmp_path / "one.npy"), "--t", "0,0.25,2", "--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out)[0], exact([0.0, 0.25, 2.0])[0], rtol=1e-8, atol=1e-10)
    assert "1 trajectory x 3 times x 2 states (float64)" in capsys.readouterr().out


def test_without_out_it_writes_trajectories_npy_here_as_help_and_docs_say(model_file, tmp_path, capsys,
                                                                          monkeypatch):
    with pytest.raises(SystemExit):
        main(["solve", "--help"])
    assert "default: trajectories.npy in the current directory" in " ".join(capsys.readouterr().out.split())
    docs = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "cli.md")
    with open(docs) as file:
        assert "default `trajectories.npy` in the current directory" in " ".join(file.read().split())
    monkeypatch.chdir(tmp_path)
    np.save("y0.npy", Y0)
    assert main(["solve", model_file, "--y0", "y0.npy"]) == 0
    np.testing.assert_allclose(np.load("trajectories.npy"), exact([0.5, 1.0]), rtol=1e-8, atol=1e-10)


def test_the_output_keeps_the_models_dtype_and_csv_every_digit_of_it(tmp_path, capsys):
    """A float32 model writes float32 (%.9g in .csv), a float64 one float64 (%.17g); either .csv reads back
    exactly the .npy's values. A float64 .npy --y0 is never lowered to float32."""
    np.savetxt(tmp_path / "y0.csv", Y0, delimiter=",")
    np.save(tmp_path / "y0_64.npy", Y0)
    for dtype, digits, tol in ((np.float32, 9, 1e-6), (np.float64, 17, 1e-10)):
        model = _linear_model(tmp_path / f"{dtype.__name__}.safetensors", dtype, tol)
        for ext in ("npy", "csv"):
            assert main(["solve", model, "--y0", str(tmp_path / "y0.csv"), "--out", str(tmp_path / f"ys.{ext}")]) == 0
            assert f"({dtype.__name__})" in capsys.readouterr().out
        ys = np.load(tmp_path / "ys.npy")
        assert ys.dtype == dtype
        np.testing.assert_allclose(ys, exact([0.5, 1.0]), rtol=100 * tol, atol=100 * tol)
        text = np.loadtxt(tmp_path / "ys.csv", delimiter=",", skiprows=1, dtype=str)[:, 2:]
        assert max(len(v.lstrip("-").replace(".", "").lstrip("0")) for v in text.ravel()) == digits
        np.testing.assert_array_equal(text.astype(dtype).reshape(ys.shape), ys)
    assert main(["solve", str(tmp_path / "float32.safetensors"), "--y0", str(tmp_path / "y0_64.npy"),
                 "--out", str(tmp_path / "ys.npy")]) == 0
    assert np.load(tmp_path / "ys.npy").dtype == np.float64


@pytest.mark.parametrize("setup, args, message", [
    (None, ["--y0", "missing.npy"], "--y0 'missing.npy': no such file"),
    (None, ["--y0", "states.txt"], "must be a .npy or .csv"),
    ("wide", ["--y0", "wide.csv"], "3 components"),
    ("text", ["--y0", "text.csv"], "could not be read as csv"),
    ("nan", ["--y0", "nan.npy"], "not finite"),
    ("empty", ["--y0", "empty.csv"], "--y0 'empty.csv' holds no states"),
    ("blank", ["--y0", "blank.csv"], "--y0 'blank.csv' holds no states"),
    ("empty", ["--y0", "empty.npy"], "--y0 'empty.npy' holds no states"),
    ("good", ["--y0", "good.npy", "--t", "0:1"], "'T0:T1:N'"),
    ("good", ["--y0", "good.npy", "--t", "0,1,0.5"], "strictly increasing"),
    ("good", ["--y0", "good.npy", "--rtol", "-1"], "--rtol must be > 0; got -1.0. Use e.g. --rtol 1e-6."),
    ("good", ["--y0", "good.npy", "--rtol", "0"], "--rtol must be > 0; got 0.0"),
    ("good", ["--y0", "good.npy", "--atol", "-1"], "--atol must be >= 0"),
    ("good", ["--y0", "good.npy", "--atol", "nan"], "--atol must be finite; got nan"),
    ("good", ["--y0", "good.npy", "--rtol", "inf"], "--rtol must be finite; got inf"),
    ("good", ["--y0", "good.npy", "--out", "result.txt"], "--out 'result.txt' must end in .npy or .csv"),
    ("good", ["--y0", "good.npy", "--out", "folder.npy"], ("--out: ", "folder.npy' is a directory")),
    ("good", ["--y0", "good.npy", "--out", "read_only.csv"], ("--out: ", "read_only.csv' is read-only")),
    ("good", ["--y0", "good.npy", "--out", "missing/ys.npy"], ("--out: ", "missing' does not exist")),
])
def test_solve_input_errors_name_the_problem_in_one_line(model_file, tmp_path, capsys, monkeypatch, setup, args,
                                                         message):
    monkeypatch.chdir(tmp_path)
    if setup == "wide":
        np.savetxt("wide.csv", np.ones((2, 3)), delimiter=",")
    elif setup == "text":
        (tmp_path / "text.csv").write_text("x,y\n1,2\n")
    elif setup == "nan":
        np.save("nan.npy", np.array([[1.0, np.nan]]))
    elif setup == "empty":
        (tmp_path / "empty.csv").write_text("")
        np.save("empty.npy", np.zeros((0, 2)))
    elif setup == "blank":
        (tmp_path / "blank.csv").write_text("\n\n\n")
    elif setup == "good":
        np.save("good.npy", Y0)
        (tmp_path / "folder.npy").mkdir()
        (tmp_path / "read_only.csv").write_text("keep")
        (tmp_path / "read_only.csv").chmod(0o444)
    assert main(["solve", model_file] + args) == 2
    err = capsys.readouterr().err
    messages = (message,) if isinstance(message, str) else message
    assert err.startswith("sciml solve: error:") and all(m in err for m in messages) and err.count("\n") == 1, err
    if setup == "good":                           # nothing written, nothing replaced
        assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.npy", "good.npy", "read_only.csv"]
        assert (tmp_path / "read_only.csv").read_text() == "keep" and not any((tmp_path / "folder.npy").iterdir())


def test_atol_zero_is_a_purely_relative_tolerance_as_in_sciml_solve(model_file, tmp_path):
    np.save(tmp_path / "y0.npy", Y0[:2])           # (the third state has a zero, which no relative error can scale)
    out = tmp_path / "ys.npy"
    assert main(["solve", model_file, "--y0", str(tmp_path / "y0.npy"), "--atol", "0", "--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), exact([0.5, 1.0])[:2], rtol=1e-8, atol=1e-10)


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


def _temporaries(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_sigkill_while_writing_the_output_keeps_the_old_file_and_the_next_run_replaces_it(model_file, tmp_path,
                                                                                            capsys):
    """`sciml solve` writes --out through a temporary file: killed while it writes 400,000 CSV rows (the
    kill waits for the temporary to be written into), the old file stays byte for byte."""
    out = tmp_path / "ys.csv"
    old = b"trajectory,t,y0,y1\n" + b"0,0.5,1,2\n" * 10_000
    out.write_bytes(old)
    np.save(tmp_path / "many.npy", np.random.default_rng(0).normal(size=(2000, 2)))
    child = subprocess.Popen(_command() + ["solve", model_file, "--y0", str(tmp_path / "many.npy"), "--t",
                                           "0:1:200", "--out", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not any(p.stat().st_size for p in tmp_path.glob(f".ys.csv.sciml-{child.pid}-*.tmp")):
            assert child.poll() is None, f"finished before it could be killed: {child.communicate()}"
            assert time.monotonic() < deadline, "the output's temporary file never appeared"
            time.sleep(0.005)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert out.read_bytes() == old
    assert len(_temporaries(tmp_path)) == 1                  # the killed write's, removed by the next write
    np.savetxt(tmp_path / "y0.csv", Y0, delimiter=",")
    assert main(["solve", model_file, "--y0", str(tmp_path / "y0.csv"), "--out", str(out)]) == 0
    rows = np.loadtxt(out, delimiter=",", skiprows=1)
    np.testing.assert_allclose(rows[:, 2:].reshape(3, 2, 2), exact([0.5, 1.0]), rtol=1e-8, atol=1e-10)
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize("name", ["node", "ude"])
def test_a_demo_without_matplotlib_stops_before_training_with_the_install_command(name, tmp_path, capsys,
                                                                                  monkeypatch):
    from sciml.demos import lotka_volterra, spiral

    def train_anyway(**kwargs):
        raise AssertionError("the demo trained before checking for matplotlib")

    monkeypatch.setattr(spiral, "run", train_anyway)
    monkeypatch.setattr(lotka_volterra, "run", train_anyway)
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # as if it were not installed
    assert main(["demo", name, "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sciml demo: error:") and err.count("\n") == 1, err
    assert 'pip install "sciml-jax[examples]"' in err and "pip install matplotlib" in err
    assert not (tmp_path / "demo").exists()


def test_the_spiral_demo_called_from_python_also_checks_matplotlib_first(tmp_path, monkeypatch):
    from sciml.demos import spiral

    def train(*args, **kwargs):
        raise AssertionError("trained before checking for matplotlib")

    monkeypatch.setattr(spiral, "train", train)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "sciml-jax\[examples\]"'):
        spiral.run(out=str(tmp_path / "demo"))


def test_a_demo_out_that_is_a_file_is_refused_before_training(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    from sciml.demos import spiral

    monkeypatch.setattr(spiral, "run", lambda **kwargs: pytest.fail("trained with an unusable --out"))
    (tmp_path / "taken").write_text("a file")
    assert main(["demo", "node", "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sciml demo: error: --out") and "taken" in err and err.count("\n") == 1, err


def test_demo_figures_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """`_plot.save` writes a valid PNG and keeps the file's mode; a drawing that fails half-way (here after
    writing every byte) leaves the old figure as it was and no temporary file."""
    pytest.importorskip("matplotlib")
    from sciml.demos import _plot

    path = tmp_path / "fig.png"
    path.write_bytes(b"old")
    path.chmod(0o600)
    fig, ax = _plot.figure()
    ax.plot([0, 1], [1, 0])
    savefig = fig.savefig

    def fails_at_the_end(*args, **kwargs):
        savefig(*args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(fig, "savefig", fails_at_the_end)
    with pytest.raises(OSError, match="disk full"):
        _plot.save(fig, str(tmp_path), "fig.png")
    assert path.read_bytes() == b"old" and _temporaries(tmp_path) == []
    monkeypatch.setattr(fig, "savefig", savefig)
    assert _plot.save(fig, str(tmp_path), "fig.png") == str(path)
    assert _valid_png(path) and (path.stat().st_mode & 0o777) == 0o600 and _temporaries(tmp_path) == []


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
