// backward(): walks autograd's tape (lib/tensor/autograd.ts) from a loss in reverse topological
// order, sums the gradients that meet (with the elementwise ops, hence its place here, above the
// tensor floor), and adds the result into each leaf's .grad, so accumulating gradients across
// batches is just not zeroing them. A checkpoint's node (lib/tensor/checkpoint.ts) is walked by
// replaying its forward and walking the recomputed sub-tape.
import type { Tensor } from "../tensor/tensor.ts";
import type { Node } from "../tensor/autograd.ts";
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
    const seed = dloss ? (scaleBy === 1 ? dloss : scale(dloss, scaleBy)) : fillLike(loss, scaleBy);
    walk(loss, seed, (t, g) => {
      // a leaf: accumulate into .grad, which outlives this scope
      // g may be shared (add's backward hands dout to both inputs), so a leaf gets its own copy
      if (t.grad) addInto(t.grad, g);
      else t.grad = keep(clone(g));
    });
  });
}

/**
 * Backpropagate `seed`, the gradient of `root`, through root's tape in reverse topological order,
 * handing each leaf's summed gradient to onLeaf once all of its uses are in. `grads` may hold
 * partial sums to continue (a checkpoint's replay, below).
 */
function walk(
  root: Tensor,
  seed: Tensor,
  onLeaf: (leaf: Tensor, g: Tensor) => void,
  grads = new Map<Tensor, Tensor>(),
): void {
  grads.set(root, seed);
  for (const t of topoOrder(root)) {
    const g = grads.get(t);
    if (!g) continue;
    if (!t.node) {
      onLeaf(t, g);
      continue;
    }
    if (t.node.replay) {
      replay(t.node, g, grads);
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
}

/**
 * A checkpoint's backward (lib/tensor/checkpoint.ts): its forward again, recording, and the walk
 * through that sub-tape down to the leaves standing for its inputs. Each leaf starts from its input's
 * partial sum in `outer` and the total goes back there, so a gradient that meets uses inside and
 * outside the checkpoint is summed in the order the plain tape sums it (the same bits). In a scope
 * of its own: the recomputed activations go back to the pool before the next checkpoint's replay.
 */
function replay(node: Node, dout: Tensor, outer: Map<Tensor, Tensor>): void {
  const totals = scope(() => {
    const { out, leaves } = node.replay!();
    const inner = new Map<Tensor, Tensor>();
    leaves.forEach((leaf, k) => {
      const prev = outer.get(node.inputs[k]!);
      if (prev && leaf.requiresGrad) inner.set(leaf, prev);
    });
    const got = new Map<Tensor, Tensor>();
    walk(out, dout, (leaf, g) => got.set(leaf, g), inner);
    const stray = [...got.keys()].find((l) => !leaves.includes(l));
    if (stray)
      throw new Error(`checkpoint: the replay reached a tensor [${stray.shape}] its forward did not; fn must be pure`);
    return leaves.map((l) => got.get(l) ?? null);
  });
  totals.forEach((g, k) => {
    if (g) outer.set(node.inputs[k]!, g);
  });
}
