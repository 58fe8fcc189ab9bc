// Reverse-mode autograd on a tape. Each differentiable op calls record() with its inputs and a
// backward closure that maps the output's gradient to one gradient per input (null where none).
// backward(loss) walks the graph in reverse topological order, sums gradients that meet, and adds
// the result into each leaf's .grad (so gradient accumulation across batches is just not zeroing).
import { Tensor } from "./tensor.ts";
import { keep, scope } from "./scope.ts";
import { addInto, add, clone, fillLike, scale } from "../ops/elementwise.ts";

export interface Node {
  op: string;
  inputs: Tensor[];
  backward: (dout: Tensor) => (Tensor | null)[];
}

let enabled = true;
let lossScale = 1;

/**
 * Mixed precision's loss scale: backward seeds the root gradient with this factor, so small gradients
 * survive f16 matmul inputs; the optimizer divides it back out (AdamW's invScale).
 */
export function setLossScale(s: number): void {
  lossScale = s;
}

export function isGradEnabled(): boolean {
  return enabled;
}

/** Run fn without recording (inference, reference models, optimizer updates). */
export function noGrad<R>(fn: () => R): R {
  const was = enabled;
  enabled = false;
  try {
    return fn();
  } finally {
    enabled = was;
  }
}

export function record(out: Tensor, op: string, inputs: Tensor[], backward: Node["backward"]): Tensor {
  if (enabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // iterative DFS: a deep model must not blow the JS stack
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    if (i === 0) {
      if (seen.has(t)) {
        stack.pop();
        continue;
      }
      seen.add(t);
    }
    const ins = t.node?.inputs ?? [];
    if (i < ins.length) {
      top[1]++;
      const next = ins[i]!;
      if (next.requiresGrad && !seen.has(next)) stack.push([next, 0]);
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

/** Fill .grad of every leaf that requires it. `dloss` defaults to ones (loss.size == 1 usually). */
export function backward(loss: Tensor, dloss?: Tensor): void {
  if (!loss.requiresGrad) throw new Error("backward: the loss does not depend on any parameter");
  scope(() => {
    const grads = new Map<Tensor, Tensor>();
    grads.set(loss, dloss ? (lossScale === 1 ? dloss : scale(dloss, lossScale)) : fillLike(loss, lossScale));
    for (const t of topoOrder(loss)) {
      const g = grads.get(t);
      if (!g) continue;
      if (!t.node) {
        // a leaf: accumulate into .grad, which outlives this scope
        // g may be shared (add's backward hands dout to both inputs), so a leaf gets its own copy
        if (t.grad) addInto(t.grad, g);
        else t.grad = keep(clone(g));
        continue;
      }
      const dins = t.node.backward(g);
      t.node.inputs.forEach((inp, k) => {
        const d = dins[k];
        if (!d || !inp.requiresGrad) return;
        const prev = grads.get(inp);
        grads.set(inp, prev ? add(prev, d) : d);
      });
    }
  });
}

export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}
