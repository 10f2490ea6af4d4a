"""Lotka-Volterra UDE: a network learns the missing interaction terms from noisy data, then symbolic
recovery turns it back into the equations x' = -b x y, y' = c x y (plus the known terms).

Run:  python examples/lotka_volterra_ude.py [--quick] [--out DIR]
The recipe itself is `sciml/demos/lotka_volterra.py` (also behind `sciml demo ude`); it writes fit.png,
extrapolation.png and loss.png into --out.
"""

from sciml.demos import lotka_volterra, script_arguments

if __name__ == "__main__":
    args = script_arguments(__doc__, "lotka_volterra_ude")
    lotka_volterra.run(out=args.out, quick=args.quick, progress=not args.no_progress)
