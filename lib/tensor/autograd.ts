// Reverse-mode autograd's tape. Each differentiable op calls record() with its inputs and a backward
// closure that maps the output's gradient to one gradient per input (null where none). Walking the
// tape needs ops (gradients that meet are added), so backward() lives above them: lib/ops/backward.ts.
import type { Tensor } from "./tensor.ts";

export interface Node {
  op: string;
  inputs: Tensor[];
  backward: (dout: Tensor) => (Tensor | null)[];
  /**
   * A checkpoint's node (checkpoint.ts) has no backward of its own: the walk re-runs its forward
   * with recording, which returns the new output and one leaf per input (leaves[k] stands for
   * inputs[k]), and backpropagates through that sub-tape instead.
   */
  replay?: () => { out: Tensor; leaves: Tensor[] };
}

let enabled = true;

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

/** Run fn recording, also inside noGrad (a checkpoint's replay during backward). */
export function withGrad<R>(fn: () => R): R {
  const was = enabled;
  enabled = true;
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

export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}
