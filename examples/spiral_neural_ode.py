"""Spiral neural ODE: a small MLP learns dy/dt = (y ** 3) @ A from 30 points of one trajectory.

Run:  python examples/spiral_neural_ode.py [--quick] [--out DIR]
The recipe itself is `sciml/demos/spiral.py` (also behind `sciml demo node`); it writes spiral.png,
loss.png and the trained model spiral_node.safetensors into --out.
"""

from sciml.demos import script_arguments, spiral

if __name__ == "__main__":
    args = script_arguments(__doc__, "spiral_neural_ode")
    spiral.run(out=args.out, quick=args.quick, progress=not args.no_progress)
