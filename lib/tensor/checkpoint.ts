// Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"):
// checkpoint(fn, inputs) runs fn in a scope of its own and keeps only its inputs and its output, so
// the activations fn saves for its backward go back to the pool at once; the backward walk
// (lib/ops/backward.ts) runs fn again, recording, and backpropagates through that sub-tape. With one
// checkpoint per transformer layer, a step holds L layer inputs plus one layer's activations at a
// time instead of every layer's, for one more forward of each layer.
//
// Bit for bit the same as without: the forward runs recording, as the plain path does, so both runs
// of fn launch the same kernels on the same values; and the parameters fn closes over become inputs
// of the checkpoint's node, so the walk sums their gradients with the other uses' in the order the
// plain tape would, and each .grad is written once per backward, as without.
//
// fn must be a function of its arguments and of leaves (parameters, constants): a tensor with a tape
// of its own that fn reads without taking it as an input would lose its gradient, so it is refused.
// Nothing random runs in our forwards (no dropout); a random op inside fn would need its seed replayed.
import { Tensor } from "./tensor.ts";
import { scope } from "./scope.ts";
import { isGradEnabled, withGrad } from "./autograd.ts";

/**
 * fn(...inputs), keeping none of its activations (see above). Under noGrad, or when nothing fn reads
 * is trained, it is just fn(...inputs). Nested checkpoints are fine: the replay of the outer one
 * checkpoints the inner one again.
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  // each input gets one leaf in the replay, and its gradient one running sum
  if (new Set(inputs).size !== inputs.length) throw new Error("checkpoint: an input is given twice");
  let reached: Reached = { params: [], inner: [] };
  const out = scope(() => {
    const y = fn(...inputs);
    if (!(y instanceof Tensor)) throw new Error("checkpoint: fn must return one tensor");
    if (inputs.includes(y)) throw new Error("checkpoint: fn returned one of its inputs");
    reached = reach(y, inputs);
    return y;
  });
  // what fn created is disposed now: a tape tensor still alive came from outside fn
  const outside = reached.inner.find((t) => t !== out && t !== out.base && !t.disposed);
  if (outside)
    throw new Error(
      `checkpoint: fn read a tensor [${outside.shape}] that needs gradients without taking it as an input; pass it in inputs`,
    );
  if (!out.requiresGrad) return out;
  const params = reached.params;
  out.node = {
    op: "checkpoint",
    inputs: [...inputs, ...params],
    backward: () => {
      throw new Error("checkpoint: its backward is the walk's replay (lib/ops/backward.ts)");
    },
    replay: () => {
      // fresh leaves over the same buffers: the walk stops at them and hands back their gradients
      const leaves = inputs.map((t) => {
        if (!t.requiresGrad) return t;
        const d = Tensor.view(t, t.shape);
        d.requiresGrad = true;
        return d;
      });
      return { out: withGrad(() => fn(...leaves)), leaves: [...leaves, ...params] };
    },
  };
  return out;
}

interface Reached {
  /** the leaves that need gradients (parameters), in the order the walk meets them */
  params: Tensor[];
  /** the tensors with a tape between the inputs and y */
  inner: Tensor[];
}

/** Walk y's tape down to the inputs: the parameters it reached and the tape tensors on the way. */
function reach(y: Tensor, inputs: Tensor[]): Reached {
  const stop = new Set(inputs);
  const seen = new Set<Tensor>([y]);
  const params: Tensor[] = [],
    inner: Tensor[] = [];
  const todo = [y];
  while (todo.length) {
    const t = todo.pop()!;
    if (!t.node) {
      params.push(t);
      continue;
    }
    inner.push(t);
    for (const i of t.node.inputs) {
      if (!i.requiresGrad || stop.has(i) || seen.has(i)) continue;
      seen.add(i);
      todo.push(i);
    }
  }
  return { params, inner };
}

let layers = false;

/**
 * Run fn with per-layer recomputation on or off (training's --recompute): the model's layer loop
 * asks recomputeLayers() and checkpoints each layer when it is on. Scoped like noGrad, also across
 * fn's awaits; the setting before is back when fn returns or throws.
 */
export function withRecompute<T>(on: boolean, fn: () => T): T {
  const was = layers;
  layers = on;
  let r: T;
  try {
    r = fn();
  } catch (e) {
    layers = was;
    throw e;
  }
  if (r instanceof Promise) return r.finally(() => (layers = was)) as T;
  layers = was;
  return r;
}

export function recomputeLayers(): boolean {
  return layers;
}
