// Reverse-mode autograd's tape. Each differentiable op calls record() with its inputs and a backward
// closure that maps the output's gradient to one gradient per input (null where none). Walking the
// tape needs ops (gradients that meet are added), so backward() lives above them: lib/ops/backward.ts.
import type { Tensor } from "./tensor.ts";

export interface Node {
  op: string;
  inputs: Tensor[];
  backward: (dout: Tensor) => (Tensor | null)[];
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
