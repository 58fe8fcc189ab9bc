// Tensor lifetimes without a garbage collector's help: scope(fn) owns every tensor created while fn
// runs and disposes them at the end, except what fn returns and what keep() takes out. A training
// step runs in one scope, so its intermediates go back to the buffer pool every step and memory stays
// flat (bun-webgpu frees nothing by itself; with Dawn's binding, waiting for GC would let GPU memory grow).
import type { Tensor } from "./tensor.ts";

const stack: Set<Tensor>[] = [];

export function track(t: Tensor): void {
  stack[stack.length - 1]?.add(t);
}

/** Take t out of every open scope: it lives until disposed by hand. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of stack) {
    s.delete(t);
    if (t.base) s.delete(t.base);
  }
  return t;
}

function returned(x: unknown, out: Set<Tensor>): void {
  if (!x || typeof x !== "object") return;
  if ((x as any).constructor?.name === "Tensor") {
    out.add(x as Tensor);
    const base = (x as Tensor).base;
    if (base) out.add(base); // a returned view keeps its owner alive
  } else if (Array.isArray(x)) for (const v of x) returned(v, out);
  else if (Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) returned(v, out);
}

function close<R>(own: Set<Tensor>, result: R): R {
  stack.pop();
  const survivors = new Set<Tensor>();
  returned(result, survivors);
  for (const t of own) {
    if (survivors.has(t))
      track(t); // hand over to the enclosing scope
    else t.dispose();
  }
  return result;
}

export function scope<R>(fn: () => R): R {
  const own = new Set<Tensor>();
  stack.push(own);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    close(own, undefined);
    throw e;
  }
  return close(own, result);
}

export async function scopeAsync<R>(fn: () => Promise<R>): Promise<R> {
  const own = new Set<Tensor>();
  stack.push(own);
  let result: R;
  try {
    result = await fn();
  } catch (e) {
    close(own, undefined);
    throw e;
  }
  return close(own, result);
}
