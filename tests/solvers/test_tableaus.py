"""The Butcher tableaus: checked order conditions, measured orders, layout, and failure on a typo.

Pure numpy. The measured orders use a tiny reference RK stepper (below) on problems with exact
solutions; each method's step sizes are chosen where its error is asymptotic and above roundoff.
"""

import dataclasses
import re

import numpy as np
import pytest

from sciml.solvers._order_conditions import rooted_trees
from sciml.solvers._tableau import ButcherTableau, hairer_dense_output
from sciml.solvers._tableaus_classic import BOSH3, EULER, HEUN, MIDPOINT, RK4
from sciml.solvers._tableaus_dormand_prince import DOPRI5, DOPRI8
from sciml.solvers._tableaus_tsitouras import TSIT5
from sciml.solvers._tableaus_verner import VERN7

# name: (tableau, stages, order, error_order, fsal, dense_order, extra stages, first extra is f1)
SPEC = {
    "euler": (EULER, 1, 1, None, False, None, 0, False),
    "midpoint": (MIDPOINT, 2, 2, None, False, None, 0, False),
    "heun": (HEUN, 2, 2, 1, False, None, 0, False),
    "rk4": (RK4, 4, 4, None, False, None, 0, False),
    "bosh3": (BOSH3, 4, 3, 2, True, 3, 0, False),
    "tsit5": (TSIT5, 7, 5, 4, True, 4, 0, False),
    "dopri5": (DOPRI5, 7, 5, 4, True, 4, 0, False),
    "dop853": (DOPRI8, 12, 8, 5, False, 7, 4, True),
    "vern7": (VERN7, 10, 7, 6, False, 6, 6, True),
}
TABLEAUS = {name: spec[0] for name, spec in SPEC.items()}


# ----------------------------------------------------------------------------- test problems


def _rotation(eps):
    """y' = (1 + eps t) J y: a rotation with a time-dependent speed, y = (cos phi, sin phi)."""

    def f(t, y):
        return (1.0 + eps * t) * np.array([-y[1], y[0]])

    def exact(t):
        phi = t + eps * t * t / 2
        return np.array([np.cos(phi), np.sin(phi)])

    return f, exact


def _forced_logistic():
    """y' = cos(t) y (1 - y), y = 1 / (1 + exp(-sin t)): nonlinear and non-autonomous."""
    return (lambda t, y: np.cos(t) * y * (1.0 - y),
            lambda t: np.array([1.0 / (1.0 + np.exp(-np.sin(t)))]))


PROBLEMS = {
    "rotation": _rotation(0.25),
    "rotation-autonomous": _rotation(0.0),
    "forced-logistic": _forced_logistic(),
}


def _stages(tab, f, t, y, h, n):
    """The first n stages k_i = f(t + c_i h, y + h sum_j a_ij k_j), over main then extra stages."""
    a, c = tab.A_all, tab.C_all
    k = np.zeros((n, y.size))
    for i in range(n):
        k[i] = f(t + c[i] * h, y + h * (a[i, :i] @ k[:i]))
    return k


def _global_error(tab, weights, problem, t1, n_steps):
    f, exact = PROBLEMS[problem]
    h, t, y = t1 / n_steps, 0.0, exact(0.0)
    for _ in range(n_steps):
        y = y + h * (weights @ _stages(tab, f, t, y, h, tab.stages))
        t += h
    return np.abs(y - exact(t1)).max()


def _dense_error(tab, problem, h, t0=0.3, thetas=(0.3, 0.5, 0.7)):
    f, exact = PROBLEMS[problem]
    y0 = exact(t0)
    k = _stages(tab, f, t0, y0, h, tab.stages + tab.extra_stages)
    powers = np.arange(1, tab.dense_degree + 1)
    return max(np.abs(y0 + h * (k.T @ tab.B_dense @ theta**powers) - exact(t0 + theta * h)).max()
               for theta in thetas)


# Errors below this (~100 ulps) would measure roundoff, not the method.
ROUNDOFF_FLOOR = 3e-14


def _slope(hs, errors):
    return np.polyfit(np.log(hs), np.log(errors), 1)[0]


# ----------------------------------------------------------------------------- rooted trees


def test_rooted_trees_are_counted_like_oeis_a000081():
    trees = rooted_trees(9)
    counts = [sum(1 for t in trees if t.order == n) for n in range(1, 10)]
    assert counts == [1, 1, 2, 4, 9, 20, 48, 115, 286]


def test_rooted_trees_have_butcher_densities():
    gamma = {t.label: t.gamma for t in rooted_trees(4)}
    assert gamma == {"τ": 1, "[τ]": 2, "[τ,τ]": 3, "[[τ]]": 6, "[τ,τ,τ]": 4, "[[τ],τ]": 8,
                     "[[τ,τ]]": 12, "[[[τ]]]": 24}


# ----------------------------------------------------------------------------- layout


@pytest.mark.parametrize("name", SPEC)
def test_declared_properties(name):
    tab, stages, order, error_order, fsal, dense_order, extra, first_is_f1 = SPEC[name]
    assert tab.name == name
    assert (tab.stages, tab.order, tab.error_order, tab.fsal) == (stages, order, error_order, fsal)
    assert (tab.dense_order, tab.extra_stages, tab.first_extra_is_f1) == (dense_order, extra,
                                                                          first_is_f1)
    assert tab.source


@pytest.mark.parametrize("name", SPEC)
def test_numpy_views(name):
    tab = TABLEAUS[name]
    s, n = tab.stages, tab.stages + tab.extra_stages
    assert tab.A.shape == (s, s) and tab.A.dtype == np.float64
    assert tab.A_all.shape == (n, n) and np.array_equal(tab.A_all[:s, :s], tab.A)
    assert np.array_equal(tab.A_all, np.tril(tab.A_all, -1))
    assert tab.B.shape == tab.C.shape == (s,) and tab.C_all.shape == (n,)
    assert (tab.B_err is None) == (tab.b_err is None)
    if tab.b_dense is not None:
        assert tab.B_dense.shape == (n, tab.dense_degree)
    with pytest.raises(ValueError):
        tab.A[0, 0] = 1.0  # read-only
    assert hash(tab) == hash(dataclasses.replace(tab))


def test_fields_are_normalised_to_tuples_of_floats():
    tab = ButcherTableau(name="midpoint-from-lists", c=[0, 0.5], a=[[], [0.5]], b=[0, 1], order=2)
    assert tab.a == ((), (0.5,)) and tab.b == (0.0, 1.0)
    assert all(type(x) is float for x in tab.c)


@pytest.mark.parametrize("name", ["dop853", "vern7"])
def test_first_extra_stage_is_f_at_the_step_end(name):
    tab = TABLEAUS[name]
    f, exact = PROBLEMS["rotation"]
    h, y0 = 0.1, exact(0.3)
    k = _stages(tab, f, 0.3, y0, h, tab.stages + 1)
    y1 = y0 + h * (tab.B @ k[: tab.stages])
    np.testing.assert_allclose(k[tab.stages], f(0.3 + h, y1), rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- cross-checks


def test_dopri5_and_bosh3_match_scipy():
    from scipy.integrate._ivp.rk import RK23, RK45

    np.testing.assert_array_equal(DOPRI5.A[:6, :5], RK45.A)
    np.testing.assert_array_equal(DOPRI5.B[:6], RK45.B)
    np.testing.assert_array_equal(DOPRI5.B_err, -RK45.E)  # scipy's E is b_hat - b
    np.testing.assert_array_equal(DOPRI5.B_dense, RK45.P)
    np.testing.assert_array_equal(BOSH3.B_err, -RK23.E)
    np.testing.assert_array_equal(BOSH3.B_dense, RK23.P)


def test_dop853_matches_scipy_including_its_nested_dense_output():
    from scipy.integrate._ivp import dop853_coefficients as coeffs
    from scipy.integrate._ivp.rk import Dop853DenseOutput

    tab = DOPRI8
    np.testing.assert_array_equal(tab.C_all, coeffs.C)
    np.testing.assert_array_equal(tab.A_all, np.tril(coeffs.A, -1))
    np.testing.assert_array_equal(tab.B_err, coeffs.E5[:12])
    np.testing.assert_array_equal(tab.B_err3, coeffs.E3[:12])
    # scipy's dense output, Hairer's nested form, on arbitrary stages.
    rng = np.random.default_rng(0)
    k, y0, h = rng.standard_normal((16, 3)), rng.standard_normal(3), 0.37
    y1 = y0 + h * (tab.B @ k[:12])
    rows = np.empty((7, 3))
    rows[0] = y1 - y0
    rows[1] = h * k[0] - rows[0]
    rows[2] = 2 * rows[0] - h * (k[12] + k[0])
    rows[3:] = h * coeffs.D @ k
    reference = Dop853DenseOutput(0.0, h, y0, rows)
    for theta in (0.1, 0.5, 0.9):
        ours = y0 + h * (k.T @ tab.B_dense @ theta ** np.arange(1, 8))
        np.testing.assert_allclose(ours, reference(theta * h), rtol=0, atol=1e-13)


def test_hairer_dense_output_reproduces_shampines_dopri5_polynomials():
    # dopri5.f's contd5 needs one row of d coefficients: the theta**4 column of the expanded form.
    d = [[-12715105075 / 11282082432, 0.0, 87487479700 / 32700410799,
          -10690763975 / 1880347072, 701980252875 / 199316789632, -1453857185 / 822651844,
          69997945 / 29380423]]
    np.testing.assert_allclose(hairer_dense_output(DOPRI5.b, d, f1_stage=6), DOPRI5.B_dense,
                               rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- measured orders

# (tableau, weights, expected order, problem, t1, coarsest number of steps); 4 runs, halving h.
CONVERGENCE = [
    ("euler", "b", "rotation", 2.0, 32),
    ("midpoint", "b", "rotation", 2.0, 8),
    ("heun", "b", "rotation", 2.0, 16),
    ("heun", "b_hat", "rotation", 2.0, 32),
    ("rk4", "b", "rotation", 2.0, 16),
    ("bosh3", "b", "rotation", 2.0, 8),
    ("bosh3", "b_hat", "rotation", 2.0, 16),
    ("tsit5", "b", "forced-logistic", 5.0, 16),  # 5th-order error terms are small by design
    ("tsit5", "b_hat", "rotation", 2.0, 32),
    ("dopri5", "b", "rotation", 2.0, 16),
    ("dopri5", "b_hat", "rotation", 2.0, 16),
    ("dop853", "b", "rotation", 2.0, 2),
    ("dop853", "b_hat", "rotation", 2.0, 16),
    ("dop853", "b_hat3", "rotation", 2.0, 8),
    ("vern7", "b", "rotation", 2.0, 4),
    ("vern7", "b_hat", "rotation", 2.0, 8),
]


@pytest.mark.parametrize("name, which, problem, t1, n0", CONVERGENCE,
                         ids=[f"{c[0]}-{c[1]}" for c in CONVERGENCE])
def test_convergence_order(name, which, problem, t1, n0):
    tab = TABLEAUS[name]
    weights, order = {
        "b": (tab.B, tab.order),
        "b_hat": (tab.B - (tab.B_err if tab.b_err is not None else 0), tab.error_order),
        "b_hat3": (tab.B - (tab.B_err3 if tab.b_err3 is not None else 0), 3),
    }[which]
    steps = [n0 * 2**k for k in range(4)]
    errors = [_global_error(tab, weights, problem, t1, n) for n in steps]
    assert min(errors) > ROUNDOFF_FLOOR, errors
    slope = _slope([t1 / n for n in steps], errors)
    assert abs(slope - order) < 0.2, (slope, errors)


# (tableau, problem, coarsest h); the local error of the dense output at theta in (0, 1).
DENSE = [
    ("bosh3", "rotation", 1 / 4),
    ("tsit5", "rotation-autonomous", 1 / 4),
    ("dopri5", "rotation", 1 / 8),
    ("dop853", "rotation-autonomous", 2.0),
]


@pytest.mark.parametrize("name, problem, h0", DENSE, ids=[d[0] for d in DENSE])
def test_dense_output_order(name, problem, h0):
    tab = TABLEAUS[name]
    hs = [h0 / 2**k for k in range(4)]
    errors = [_dense_error(tab, problem, h) for h in hs]
    assert min(errors) > ROUNDOFF_FLOOR, errors
    slope = _slope(hs, errors)
    assert abs(slope - (tab.dense_order + 1)) < 0.2, (slope, errors)


@pytest.mark.parametrize("name", [n for n, t in TABLEAUS.items() if t.b_dense is not None])
def test_dense_output_is_at_least_of_its_order_on_a_non_autonomous_problem(name):
    # Exercises c_extra. Vern7's extension is of order 6 exactly but misses the order-7 conditions
    # only slightly, so in float64 its error falls faster than h**7; hence a lower bound here.
    tab = TABLEAUS[name]
    hs = [1.0 / 2**k for k in range(4)]
    errors = [_dense_error(tab, "rotation", h) for h in hs]
    assert min(errors) > ROUNDOFF_FLOOR, errors
    assert _slope(hs, errors) > tab.dense_order + 1 - 0.2, errors


@pytest.mark.parametrize("name", [n for n, t in TABLEAUS.items() if t.b_dense is not None])
def test_dense_output_ends_at_the_step(name):
    tab = TABLEAUS[name]
    f, exact = PROBLEMS["rotation"]
    h, y0 = 0.2, exact(0.3)
    k = _stages(tab, f, 0.3, y0, h, tab.stages + tab.extra_stages)
    y1 = y0 + h * (tab.B @ k[: tab.stages])
    # Vern7's b_dense entries reach 1.2e3, so its rows sum to b_i only to ~1e-13.
    np.testing.assert_allclose(y0 + h * (k.T @ tab.B_dense.sum(axis=1)), y1, rtol=0, atol=1e-13)


# ----------------------------------------------------------------------------- a typo fails


def _nonzero(values):
    return [i for i, v in enumerate(values) if v != 0.0]


def _flip_digit(x: float, digit: int) -> float:
    """x with its `digit`-th significant decimal digit changed (1 = leading digit)."""
    mantissa, exponent = f"{abs(x):.16e}".split("e")
    digits = list(mantissa.replace(".", ""))
    digits[digit - 1] = "1" if digits[digit - 1] != "1" else "2"
    text = f"{digits[0]}.{''.join(digits[1:])}e{exponent}"
    return float(text) if x > 0 else -float(text)


def _replace_entry(tab, field, index, value):
    """A copy of tab's fields (as a dict) with field[index] (or field[i][j]) set to value."""
    fields = {f.name: getattr(tab, f.name) for f in dataclasses.fields(tab)}
    if isinstance(index, tuple):
        i, j = index
        rows = [list(r) for r in fields[field]]
        rows[i][j] = value
        fields[field] = tuple(tuple(r) for r in rows)
    else:
        vector = list(fields[field])
        vector[index] = value
        fields[field] = tuple(vector)
    return fields


def _typo_sites(tab):
    """Up to three entries of every coefficient field: first, middle and last nonzero."""
    sites = []
    for field in ("c", "b", "b_err", "b_err3", "c_extra"):
        nz = _nonzero(getattr(tab, field) or ())
        if nz:
            sites += [(field, i) for i in sorted({nz[0], nz[len(nz) // 2], nz[-1]})]
    for field in ("a", "a_extra", "b_dense"):
        rows = getattr(tab, field) or ()
        entries = [(i, j) for i, row in enumerate(rows) for j in _nonzero(row)]
        if entries:
            sites += [(field, e) for e in {entries[0], entries[len(entries) // 2], entries[-1]}]
    return sites


@pytest.mark.parametrize("name", SPEC)
@pytest.mark.parametrize("digit", [2, 5, 8])
def test_one_mistyped_digit_fails_at_construction(name, digit):
    tab = TABLEAUS[name]
    sites = _typo_sites(tab)
    assert sites
    for field, index in sites:
        value = getattr(tab, field)[index] if not isinstance(index, tuple) else \
            getattr(tab, field)[index[0]][index[1]]
        fields = _replace_entry(tab, field, index, _flip_digit(value, digit))
        if tab.fsal and field in ("a", "b"):
            # Keep the FSAL row equal to b so that the order conditions, not the flag, catch it.
            b = fields["b"] if field == "b" else (*fields["a"][-1], 0.0)
            fields["a"] = (*fields["a"][:-1], b[:-1])
            fields["b"] = b
        with pytest.raises(ValueError, match=f"'{name}'"):
            ButcherTableau(**fields)


DELTA = 1e-6


def _perturbed(name, field):
    """Fields with one coefficient moved by DELTA, compensated so that only an order condition
    (not a row sum, b_i(1) = b_i or the FSAL flag) breaks."""
    tab = TABLEAUS[name]
    fields = {f.name: getattr(tab, f.name) for f in dataclasses.fields(tab)}
    if field == "a":  # a_i0 and c_i together, in the last row that b weighs: row sums still hold
        i = max(k for k in range(1, tab.stages) if tab.b[k] != 0.0)
        a = [list(r) for r in tab.a]
        a[i][0] += DELTA
        fields["a"] = tuple(tuple(r) for r in a)
        fields["c"] = tuple(c + DELTA if k == i else c for k, c in enumerate(tab.c))
    elif field in ("b", "b_err"):  # +DELTA and -DELTA: the weights still sum to 1 (or 0)
        i, j = 0, _nonzero(getattr(tab, field))[-1]  # c_0 = 0 differs from c_j
        vector = list(getattr(tab, field))
        vector[i] += DELTA
        vector[j] -= DELTA
        fields[field] = tuple(vector)
        if field == "b" and tab.fsal:
            fields["a"] = (*tab.a[:-1], fields["b"][:-1])
    elif field == "a_extra":  # last extra row, with its node
        a = [list(r) for r in tab.a_extra]
        a[-1][0] += DELTA
        fields["a_extra"] = tuple(tuple(r) for r in a)
        fields["c_extra"] = (*tab.c_extra[:-1], tab.c_extra[-1] + DELTA)
    elif field == "b_dense":  # add DELTA (theta - theta**2): b_i(1) is unchanged
        rows = [list(r) for r in tab.b_dense]
        rows[0][0] += DELTA
        rows[0][1] -= DELTA
        fields["b_dense"] = tuple(tuple(r) for r in rows)
    return fields


PERTURBATIONS = (
    [(n, "a", "order condition for tree") for n, t in TABLEAUS.items() if t.stages > 1]
    + [(n, "b", "order condition for tree") for n in TABLEAUS if n != "euler"]
    + [(n, "b_err", "embedded order condition (b - b_err) for tree") for n, t in TABLEAUS.items()
       if t.b_err is not None and t.error_order > 1]
    + [(n, "a_extra", "dense-output condition for tree") for n, t in TABLEAUS.items()
       if t.extra_stages]
    + [(n, "b_dense", "dense-output condition for tree") for n, t in TABLEAUS.items()
       if t.b_dense is not None]
)


@pytest.mark.parametrize("name, field, condition", PERTURBATIONS,
                         ids=[f"{p[0]}-{p[1]}" for p in PERTURBATIONS])
def test_perturbing_a_coefficient_by_1e_6_breaks_an_order_condition(name, field, condition):
    with pytest.raises(ValueError, match=re.escape(f"'{name}': {condition} ")):
        ButcherTableau(**_perturbed(name, field))


def test_error_message_names_method_tree_and_values():
    fields = _perturbed("rk4", "b")
    with pytest.raises(ValueError) as info:
        ButcherTableau(**fields)
    message = str(info.value)
    assert "'rk4'" in message and "order condition for tree [τ] (order 2)" in message
    assert "got 0.49999" in message and "expected 0.5" in message


def test_inconsistent_declarations_fail():
    rk4 = {f.name: getattr(RK4, f.name) for f in dataclasses.fields(RK4)}
    with pytest.raises(ValueError, match="understates"):
        ButcherTableau(**{**rk4, "order": 3})
    with pytest.raises(ValueError, match="a\\[2\\]` has 1 entries"):
        ButcherTableau(**{**rk4, "a": ((), (0.5,), (0.5,), (0.0, 0.0, 1.0))})
    with pytest.raises(ValueError, match="`fsal=True` needs"):
        ButcherTableau(**{**rk4, "fsal": True})
    with pytest.raises(ValueError, match="give both or neither"):
        ButcherTableau(**{**rk4, "error_order": 3})
    bosh3 = {f.name: getattr(BOSH3, f.name) for f in dataclasses.fields(BOSH3)}
    with pytest.raises(ValueError, match="set `fsal=True`"):
        ButcherTableau(**{**bosh3, "fsal": False})
    with pytest.raises(ValueError, match="inconsistent at theta=1"):
        rows = [list(r) for r in BOSH3.b_dense]
        rows[1][2] += 1e-6
        ButcherTableau(**{**bosh3, "b_dense": tuple(tuple(r) for r in rows)})
