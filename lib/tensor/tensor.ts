// Tensor: a pooled GPU buffer with a shape and a dtype, plus the autograd fields. Row-major and
// contiguous always (ops that need another layout take flags, like matmul's transA/transB), so there
// are no strides to get wrong. Every tensor is owned by the innermost scope() it was created in
// (scope.ts) and returns its buffer to the pool when that scope ends, unless kept.
import { acquireBuffer, releaseBuffer, readBuffer, writeBuffer, formatBytes, TooLargeError } from "../gpu/index.ts";
import { track } from "./scope.ts";
import type { Node } from "./autograd.ts";

export type DType = "f32" | "i32" | "u32" | HalfDType;
/** Packed 16-bit floats: weights kept in the width the checkpoint stored them in. */
export type HalfDType = "bf16" | "f16";
/** The host form of a tensor's contents; a half tensor's is its raw 16-bit words. */
export type HostArray = Float32Array | Int32Array | Uint32Array | Uint16Array;

export function isHalf(dtype: DType): dtype is HalfDType {
  return dtype === "bf16" || dtype === "f16";
}

/** Bytes one element takes on the device. */
export function elementBytes(dtype: DType): number {
  return isHalf(dtype) ? 2 : 4;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly size: number;
  private _buffer: GPUBuffer | null;
  requiresGrad = false;
  grad: Tensor | null = null;
  /** the op that produced this tensor, when it is part of a differentiable computation */
  node: Node | null = null;
  /** for a view: the tensor that owns the buffer (kept alive as long as the view is) */
  readonly base: Tensor | null;

  constructor(shape: readonly number[], dtype: DType = "f32", viewOf?: Tensor) {
    for (const d of shape) if (!Number.isInteger(d) || d < 0) throw new Error(`bad tensor shape [${shape}]`);
    this.shape = [...shape];
    this.dtype = dtype;
    this.size = numel(shape);
    if (viewOf) {
      if (viewOf.size !== this.size)
        throw new Error(`view: [${viewOf.shape}] has ${viewOf.size} elements, [${shape}] needs ${this.size}`);
      if (elementBytes(viewOf.dtype) !== elementBytes(dtype))
        throw new Error(`view: a ${viewOf.dtype} tensor cannot be viewed as ${dtype} (another element width)`);
      this.base = viewOf.base ?? viewOf;
      this._buffer = viewOf.storage;
    } else {
      this.base = null;
      try {
        this._buffer = acquireBuffer(this.size * elementBytes(dtype));
      } catch (e) {
        if (!(e instanceof TooLargeError)) throw e;
        // activations grow with the batch: say which knob shrinks them
        throw new TooLargeError(
          e.bytes,
          e.limit,
          `a tensor of shape [${shape}] (${formatBytes(e.bytes)})`,
          "lower --batch-size (and raise --accumulation-steps to keep the batch) or --seq-len",
        );
      }
    }
    track(this);
  }

  /** The buffer of an f32 or integer tensor: what every op binds (a half tensor is refused). */
  get buffer(): GPUBuffer {
    if (isHalf(this.dtype))
      throw new Error(
        `a ${this.dtype} tensor [${this.shape}] (half-width weights) reached an op that reads only f32; ` +
          "matmul's B operand and the embedding read half-width weights, others need them loaded as f32",
      );
    return this.storage;
  }

  /** The buffer whatever the dtype: for the ops that read half-width tensors, and for plain copies. */
  get storage(): GPUBuffer {
    if (!this._buffer || this.base?.disposed) throw new Error(`use of a disposed tensor [${this.shape}]`);
    return this._buffer;
  }

  /** The same buffer under another shape (no copy; the owner must outlive it). */
  static view(t: Tensor, shape: readonly number[], dtype: DType = t.dtype): Tensor {
    return new Tensor(shape, dtype, t);
  }

  get bytes(): number {
    return this.size * elementBytes(this.dtype);
  }

  get disposed(): boolean {
    return this._buffer === null;
  }

  /** Uninitialised contents (pooled buffers hold whatever was there). */
  static empty(shape: readonly number[], dtype: DType = "f32"): Tensor {
    return new Tensor(shape, dtype);
  }

  static from(data: ArrayLike<number>, shape: readonly number[], dtype: DType = "f32"): Tensor {
    const t = new Tensor(shape, dtype);
    if (data.length !== t.size) throw new Error(`Tensor.from: ${data.length} values for shape [${shape}]`);
    // an array of the right type goes up as it is: a 544 MB embedding is not copied on the host first
    // (a half tensor's data is its 16-bit words, the bytes of a BF16/F16 safetensors entry)
    const Ctor = hostType(dtype);
    const host = data instanceof Ctor ? data : Ctor.from(data);
    writeBuffer(t.storage, host);
    return t;
  }

  async toArray(): Promise<HostArray> {
    const raw = await readBuffer(this.storage, this.bytes);
    return new (hostType(this.dtype))(raw, 0, this.size);
  }

  /** Mark as a leaf that collects gradients (parameters). */
  param(): this {
    if (isHalf(this.dtype))
      throw new Error(`a ${this.dtype} tensor [${this.shape}] cannot be trained: load the weights as f32`);
    this.requiresGrad = true;
    return this;
  }

  dispose(): void {
    if (this._buffer && !this.base) releaseBuffer(this._buffer);
    this._buffer = null;
    this.node = null;
  }

  toString(): string {
    return `Tensor(${this.dtype}[${this.shape.join(", ")}])`;
  }
}

function hostType(dtype: DType) {
  if (dtype === "f32") return Float32Array;
  if (dtype === "i32") return Int32Array;
  if (dtype === "u32") return Uint32Array;
  if (dtype === "bf16" || dtype === "f16") return Uint16Array;
  return dtype satisfies never;
}
