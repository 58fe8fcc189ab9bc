// backward(): walks autograd's tape (lib/tensor/autograd.ts) from a loss in reverse topological
// order, sums the gradients that meet (with the elementwise ops, hence its place here, above the
// tensor floor), and adds the result into each leaf's .grad, so accumulating gradients across
// batches is just not zeroing them.
import type { Tensor } from "../tensor/tensor.ts";
import { keep, scope } from "../tensor/scope.ts";
import { addInto, add, clone, fillLike, scale } from "./elementwise.ts";

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

/**
 * Fill .grad of every leaf that requires it. `dloss` defaults to ones (loss.size == 1 usually).
 * `scale` multiplies the seed: mixed precision's loss scale (lib/optim/grad_scaler.ts), so small
 * gradients survive f16 matmul inputs; the optimizer divides it back out.
 */
export function backward(loss: Tensor, dloss?: Tensor, scaleBy = 1): void {
  if (!loss.requiresGrad) throw new Error("backward: the loss does not depend on any parameter");
  scope(() => {
    const grads = new Map<Tensor, Tensor>();
    grads.set(loss, dloss ? (scaleBy === 1 ? dloss : scale(dloss, scaleBy)) : fillLike(loss, scaleBy));
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
