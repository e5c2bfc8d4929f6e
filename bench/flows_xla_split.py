"""Where a flow's train step and sampler spend their time under XLA: ours vs TFP's.

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
  per call (the call's fixed cost = this minus the step in the loop).
* Sampling n = ``--sample-n`` as flows_speed times it (ours ``model.sample`` in a
  ``tf.function``: the base draw as a graph, the decoding under XLA; TFP's
  ``dist.sample`` with ``jit_compile=True``), and the decoding of a given z alone
  (the bijector's forward under XLA, both): its HLO sizes, and the time split
  into the decoding and the rest (drawing z, the call).

The sides run in alternating rounds, medians over ``--rounds``, so that the
host's drift moves both alike.

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


def ours_side(flow, n):
    """Ours: flows_speed's model, its loss, variables and train step, its
    sampler of `n` (as flows_speed times it: the base draw as a graph, the
    decoding compiled with XLA) and that decoding alone."""
    import keras
    import tensorflow as tf

    from zoo import fitting

    model = flows_speed.ours_model(flow)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=1,
                  jit_compile=False)
    fitting.build_optimizers(model)
    return {"loss": lambda x: model.training_terms(x)[0]["loss"],
            "variables": model.trainable_weights,
            "step": lambda x: model.train_step(x)["loss"],
            "sample": tf.function(lambda: model.sample(n, seed=1), autograph=False),
            "decode": lambda z: model.bijector.forward(z)}


def tfp_side(flow, n):
    """TFP: the stock flow's loss, variables and train step (flows_speed's
    ``tfp_xla``: a ``tf_keras`` Adam, built first), its sampler of `n` compiled
    with XLA, and its bijector's forward alone."""
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

    return {"loss": loss, "variables": variables, "step": step,
            "sample": tf.function(lambda: dist.sample(n, seed=(1, 2)), jit_compile=True,
                                  autograph=False),
            "decode": lambda z: dist.bijector.forward(z)}


def timed_functions(side, xs, x, z):
    """name -> (compiled function, its arguments, steps it runs): each part of
    the train step K times in a while loop, the step once per call, the
    sampler and the decoding of `z` alone."""
    import tensorflow as tf

    loss, variables = side["loss"], side["variables"]

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

    k = int(xs.shape[0])
    return {"forward": (looped(loss), (xs,), k), "gradients": (looped(gradients), (xs,), k),
            "step": (looped(side["step"]), (xs,), k),
            "step_per_call": (tf.function(side["step"], jit_compile=True, autograph=False),
                              (x,), 1),
            "sample": (side["sample"], (), 1),
            "decode": (tf.function(side["decode"], jit_compile=True, autograph=False), (z,), 1)}


def compiled_counts(fn, *args):
    """HLO counts of `fn` compiled with XLA on `args`: as traced and optimized."""
    import tensorflow as tf

    ir = tf.function(fn, jit_compile=True, autograph=False).experimental_get_compiler_ir(*args)
    return hlo_counts(ir(stage="hlo")), hlo_counts(ir(stage="optimized_hlo"))


ROWS = [  # (label, value of one side's result)
    ("variables", lambda r: r["variables"]),
    ("parameters", lambda r: r["parameters"]),
    ("loss: HLO dots", lambda r: r["loss_hlo"]["dot"]),
    ("loss: optimized dots", lambda r: r["loss_optimized_hlo"]["dot"]),
    ("step: HLO instructions", lambda r: r["step_hlo"]["instructions"]),
    ("optimized instructions", lambda r: r["step_optimized_hlo"]["instructions"]),
    ("  fusions", lambda r: r["step_optimized_hlo"]["fusion"]),
    ("  dots", lambda r: r["step_optimized_hlo"]["dot"]),
    ("  while loops", lambda r: r["step_optimized_hlo"]["while"]),
    ("  kernels", lambda r: r["step_optimized_hlo"]["kernels"]),
    ("decode: HLO dots", lambda r: r["decode_hlo"]["dot"]),
    ("optimized instructions", lambda r: r["decode_optimized_hlo"]["instructions"]),
    ("  dots", lambda r: r["decode_optimized_hlo"]["dot"]),
    ("  while loops", lambda r: r["decode_optimized_hlo"]["while"]),
    ("  kernels", lambda r: r["decode_optimized_hlo"]["kernels"]),
]
TIMES = ["forward", "backward", "update", "step", "call_overhead", "step_per_call",
         "sample", "decode", "draw_and_call"]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", default=",".join(flows_speed.FLOWS))
    parser.add_argument("--k", type=int, default=100, help="steps per call in the loops")
    parser.add_argument("--sample-n", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3, help="calls timed per round")
    args = parser.parse_args()
    flows = [f for f in args.flows.split(",") if f]
    if not flows or set(flows) - set(flows_speed.FLOWS):
        parser.error(f"--flows must be a comma list of {', '.join(flows_speed.FLOWS)}, "
                     f"got {args.flows!r}")
    if min(args.k, args.sample_n, args.rounds, args.calls) < 1:
        parser.error("--k, --sample-n, --rounds and --calls must be >= 1")
    import tensorflow as tf

    batches = list(flows_speed.data().take(args.k))
    xs, x = tf.stack(batches), batches[0]
    z = tf.random.stateless_normal([args.sample_n, 2], seed=[1, 2])
    report = {"args": vars(args), "flows": {}}
    for flow in flows:
        sides = {"ours": ours_side(flow, args.sample_n), "tfp": tfp_side(flow, args.sample_n)}
        result, functions = {}, {}
        for name, side in sides.items():
            loss_hlo, loss_opt = compiled_counts(side["loss"], x)
            step_hlo, step_opt = compiled_counts(side["step"], x)
            decode_hlo, decode_opt = compiled_counts(side["decode"], z)
            result[name] = {
                "variables": len(side["variables"]),
                "parameters": int(sum(v.shape.num_elements() for v in side["variables"])),
                "loss_hlo": loss_hlo, "loss_optimized_hlo": loss_opt,
                "step_hlo": step_hlo, "step_optimized_hlo": step_opt,
                "decode_hlo": decode_hlo, "decode_optimized_hlo": decode_opt,
                "compile_s": {}}
            functions[name] = timed_functions(side, xs, x, z)
            for part, (fn, fn_args, _) in functions[name].items():  # compiles, warms up
                start = time.perf_counter()
                tf.nest.map_structure(lambda t: t.numpy(), fn(*fn_args))
                result[name]["compile_s"][part] = time.perf_counter() - start
        times = {name: collections.defaultdict(list) for name in sides}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for part in functions["ours"]:
                for name in order:
                    fn, fn_args, per = functions[name][part]
                    start = time.perf_counter()
                    for _ in range(args.calls):
                        out = fn(*fn_args)
                    tf.nest.map_structure(lambda t: t.numpy(), out)
                    times[name][part].append((time.perf_counter() - start) / args.calls / per)
        for name in sides:
            ms = {part: 1e3 * statistics.median(t) for part, t in times[name].items()}
            result[name]["ms"] = {
                "forward": ms["forward"],
                "backward": ms["gradients"] - ms["forward"],
                "update": ms["step"] - ms["gradients"],
                "step": ms["step"],
                "call_overhead": ms["step_per_call"] - ms["step"],
                "step_per_call": ms["step_per_call"],
                "sample": ms["sample"],
                "decode": ms["decode"],
                "draw_and_call": ms["sample"] - ms["decode"],
            }
        report["flows"][flow] = result

        print(f"\n{flow} under XLA: one train step (batch {flows_speed.BATCH}; ms per step at "
              f"{args.k} steps per call), sampling n={args.sample_n} (ms per call); "
              f"medians of {args.rounds} rounds")
        print(f"{'':<24} {'ours':>10} {'TFP':>10} {'TFP/ours':>9}")
        for label, get in ROWS:
            a, b = get(result["ours"]), get(result["tfp"])
            print(f"{label:<24} {a:>10} {b:>10} {b / a if a else float('nan'):>9.2f}")
        for key in TIMES:
            a, b = result["ours"]["ms"][key], result["tfp"]["ms"][key]
            print(f"{key + ' ms':<24} {a:>10.3f} {b:>10.3f} "
                  f"{b / a if a > 0 else float('nan'):>9.2f}")
        for name in sides:
            print(f"  {name}: step's optimized HLO, most frequent ops: "
                  f"{result[name]['step_optimized_hlo']['top_ops']}")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "flows_xla_split.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
