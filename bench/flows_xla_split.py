"""Where a flow's train step spends its time under XLA: ours vs TFP's stock flow.

The flows, data and optimizer of bench/flows_speed.py (FFJORD moons, batch 256,
Adam 1e-3; ours from ``ours_model``, TFP's from ``tfp_flow``), in one process:

* HLO sizes of one train step compiled with XLA
  (``tf.function(step, jit_compile=True).experimental_get_compiler_ir(x)``):
  instructions of the HLO as traced (``stage="hlo"``) and after XLA's passes
  (``"optimized_hlo"``), the optimized program's fusions, dots and loops, and its
  "kernels": the instructions outside fused computations that do work (not
  parameters, constants, tuples, bitcasts), about what XLA:CPU runs one by one.
  And the dots (matrix products) of the loss alone, as traced and optimized: the
  traced count says how many times the coupling networks run in the graph
  (3 dense layers x 8 couplings = 24 for RealNVP), the optimized one how many
  are left after XLA merged the duplicates (its CSE pass).
* The per-step time split, each part compiled with XLA and run ``--k`` steps per
  call in a ``tf.while_loop`` over stacked batches (as flows_speed's
  ``tfp_<flow>_xla`` and ours' executions run): the loss alone (forward), the
  loss and its gradients (backward = this minus forward), the whole train step
  (the optimizer update and ours' loss trackers = this minus that), and one step
  per call (the call's fixed cost = this minus the step in the loop). The sides
  run in alternating rounds, medians over ``--rounds``, so that the host's drift
  moves both alike.

    .venv/bin/python bench/flows_xla_split.py [--flows realnvp,maf,nsf] [--k 100]

Prints a table per flow and writes bench/results/flows_xla_split.json.
"""

import argparse
import collections
import json
import os
import re
import statistics
import time

import flows_speed  # bench/, the scripts' folder

RESULTS = flows_speed.RESULTS
TRIVIAL = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast"}
INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*.*?\s([a-z][a-z0-9\-]*)\(")
COMPUTATION = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")  # unindented
CALLED = re.compile(r"(?:calls|to_apply)=%?([\w.\-]+)")


def hlo_counts(text):
    """Instruction counts of an HLO module's text: all, by opcode, and the
    kernels (work outside fused and reducer computations)."""
    computations, name = collections.defaultdict(list), None
    nested = set()
    for line in text.splitlines():
        if m := COMPUTATION.match(line):
            name = m.group(2)
        elif (m := INSTRUCTION.match(line)) and name is not None:
            computations[name].append(m.group(1))
            if m.group(1) != "while" and m.group(1) != "conditional":
                nested.update(CALLED.findall(line))
    ops = collections.Counter(op for body in computations.values() for op in body)
    kernels = sum(op not in TRIVIAL for name, body in computations.items()
                  if name not in nested for op in body)
    return {"instructions": sum(ops.values()), "fusion": ops["fusion"], "dot": ops["dot"],
            "while": ops["while"], "kernels": kernels,
            "top_ops": dict(ops.most_common(8))}


def ours_side(flow):
    """Ours: the loss, variables and train step of flows_speed's model."""
    import keras

    from zoo import fitting

    model = flows_speed.ours_model(flow)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=1,
                  jit_compile=False)
    fitting.build_optimizers(model)
    return (lambda x: model.training_terms(x)[0]["loss"], model.trainable_weights,
            lambda x: model.train_step(x)["loss"])


def tfp_side(flow):
    """TFP: the stock flow's loss, variables and train step (flows_speed's
    ``tfp_xla``: a ``tf_keras`` Adam, built first)."""
    import tensorflow as tf
    import tf_keras

    dist, variables = flows_speed.tfp_flow(flow)
    optimizer = tf_keras.optimizers.Adam(1e-3)
    optimizer.build(variables)

    def loss(x):
        return -tf.reduce_mean(dist.log_prob(x))

    def step(x):
        with tf.GradientTape() as tape:
            value = loss(x)
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))
        return value

    return loss, variables, step


def parts(loss, variables, step):
    """The compiled functions timed: each part K times in a while loop, and the
    step once per call."""
    import tensorflow as tf

    def gradients(x):
        with tf.GradientTape() as tape:
            value = loss(x)
        grads = tape.gradient(value, variables)  # kept: their sum is returned
        return value + 0.0 * tf.add_n([tf.reduce_sum(g) for g in grads])

    def looped(part):
        def run(xs):
            def body(i, total):
                return i + 1, total + part(xs[i])

            return tf.while_loop(lambda i, _: i < tf.shape(xs)[0], body,
                                 [tf.constant(0), tf.constant(0.0)])[1]

        return tf.function(run, jit_compile=True, autograph=False)

    return {"forward": looped(loss), "gradients": looped(gradients), "step": looped(step),
            "step_per_call": tf.function(step, jit_compile=True, autograph=False)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", default=",".join(flows_speed.FLOWS))
    parser.add_argument("--k", type=int, default=100, help="steps per call in the loops")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3, help="calls timed per round")
    args = parser.parse_args()
    flows = [f for f in args.flows.split(",") if f]
    if not flows or set(flows) - set(flows_speed.FLOWS):
        parser.error(f"--flows must be a comma list of {', '.join(flows_speed.FLOWS)}, "
                     f"got {args.flows!r}")
    if args.k < 1 or args.rounds < 1 or args.calls < 1:
        parser.error("--k, --rounds and --calls must be >= 1")
    import tensorflow as tf

    batches = list(flows_speed.data().take(args.k))
    xs, x = tf.stack(batches), batches[0]
    report = {"args": vars(args), "flows": {}}
    for flow in flows:
        sides = {"ours": ours_side(flow), "tfp": tfp_side(flow)}
        result = {}
        for side, (loss, variables, step) in sides.items():
            step_fn = tf.function(step, jit_compile=True, autograph=False)
            loss_fn = tf.function(loss, jit_compile=True, autograph=False)
            result[side] = {
                "loss_hlo": hlo_counts(loss_fn.experimental_get_compiler_ir(x)(stage="hlo")),
                "loss_optimized_hlo": hlo_counts(
                    loss_fn.experimental_get_compiler_ir(x)(stage="optimized_hlo")),
                "variables": len(variables),
                "parameters": int(sum(v.shape.num_elements() for v in variables)),
                "hlo": hlo_counts(step_fn.experimental_get_compiler_ir(x)(stage="hlo")),
                "optimized_hlo": hlo_counts(
                    step_fn.experimental_get_compiler_ir(x)(stage="optimized_hlo")),
                "functions": parts(loss, variables, step),
            }
        for side in sides:  # compiles and warms up each
            for name, fn in result[side]["functions"].items():
                start = time.perf_counter()
                float(fn(x if name == "step_per_call" else xs))
                result[side].setdefault("compile_s", {})[name] = time.perf_counter() - start
        times = {side: collections.defaultdict(list) for side in sides}
        names = list(result["ours"]["functions"])
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for name in names:
                for side in order:
                    fn = result[side]["functions"][name]
                    arg, per = (x, 1) if name == "step_per_call" else (xs, args.k)
                    start = time.perf_counter()
                    for _ in range(args.calls):
                        out = fn(arg)
                    float(out)
                    times[side][name].append((time.perf_counter() - start) / args.calls / per)
        for side in sides:
            ms = {name: 1e3 * statistics.median(t) for name, t in times[side].items()}
            result[side]["ms_per_step"] = {
                "forward": ms["forward"],
                "backward": ms["gradients"] - ms["forward"],
                "update": ms["step"] - ms["gradients"],
                "step": ms["step"],
                "call_overhead": ms["step_per_call"] - ms["step"],
                "step_per_call": ms["step_per_call"],
            }
            del result[side]["functions"]
        report["flows"][flow] = result

        print(f"\n{flow}: one train step under XLA, batch {flows_speed.BATCH} "
              f"(ms per step: {args.k} steps per call, medians of {args.rounds} rounds)")
        keys = [("variables", "variables"), ("parameters", "parameters"),
                ("loss_dots", "loss: HLO dots"), ("loss_opt_dots", "loss: optimized dots"),
                ("hlo", "step: HLO instructions"), ("opt", "optimized instructions"),
                ("fusion", "  fusions"), ("dot", "  dots"), ("while", "  while loops"),
                ("kernels", "  kernels")]
        print(f"{'':<24} {'ours':>10} {'TFP':>10} {'TFP/ours':>9}")
        for key, label in keys:
            def get(side):
                r = result[side]
                if key in ("variables", "parameters"):
                    return r[key]
                if key == "loss_dots":
                    return r["loss_hlo"]["dot"]
                if key == "loss_opt_dots":
                    return r["loss_optimized_hlo"]["dot"]
                if key == "hlo":
                    return r["hlo"]["instructions"]
                if key == "opt":
                    return r["optimized_hlo"]["instructions"]
                return r["optimized_hlo"][key]
            a, b = get("ours"), get("tfp")
            print(f"{label:<24} {a:>10} {b:>10} {b / a if a else float('nan'):>9.2f}")
        for key in ("forward", "backward", "update", "step", "call_overhead", "step_per_call"):
            a, b = result["ours"]["ms_per_step"][key], result["tfp"]["ms_per_step"][key]
            print(f"{key + ' ms':<24} {a:>10.3f} {b:>10.3f} "
                  f"{b / a if a > 0 else float('nan'):>9.2f}")
        for side in sides:
            print(f"  {side} optimized HLO, most frequent ops: "
                  f"{result[side]['optimized_hlo']['top_ops']}")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "flows_xla_split.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
