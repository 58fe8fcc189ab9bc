// Token embedding lookup and its gradient, the table's rows summed over the tokens that read them.
// The gradient is a sort then a gather rather than a scatter-add, so that many threads share it and
// no two write the same value: a bitonic sort groups the token positions by id, a binary search per
// row finds each row's range, and one thread per (row, channel) adds its tokens' gradients in
// ascending position. That order is fixed whatever the scheduling (no atomics), so the result is the
// same bits every run, and the same as the CPU reference's, which adds in that order (WGSL's f32
// addition rounds correctly; only a GPU that flushes subnormals could differ, on subnormal values).
// Kernels: kernels/embedding.wgsl (lookup); embedding_backward_sort.wgsl, embedding_backward_rows.wgsl
// and embedding_backward.wgsl (gradient). A table over one storage binding (a 151,936-token vocabulary)
// is read and its gradient written in windows of rows, one dispatch each: the same values, bit for bit.
// A half-width table (bf16/f16 weights loaded for inference) is gathered the same way, each value
// widened exactly as it is copied (kernels/common/half_weights.wgsl); it takes no gradient.
import { pipeline, dispatch, clearBuffer, rowRanges, span } from "../gpu/index.ts";
import { Tensor, elementBytes, isHalf } from "../tensor/tensor.ts";
import { halfDefine } from "./_matmul_variants.ts";
import { record } from "../tensor/autograd.ts";
import { strideGrid } from "../gpu/grid.ts";

// pairs a workgroup sorts in workgroup memory (embedding_backward_sort.wgsl's TILE)
const SORT_TILE = 2048;
const SORT_WG = 256;
// the gather's workgroup (embedding_backward.wgsl's WG, ROWS) and the most channel groups (of 4, or
// of 1 when C is not a multiple of 4) a thread sums per row: lavapipe is fastest with few fat
// workgroups (C = 384 is one block of 32 threads × 3 groups), a GPU at wide C gets C / 512 blocks
const GATHER_WG = 32;
const GATHER_ROWS = 8;
const GROUPS_PER_THREAD = 4;

export function embeddingRef(W: Float32Array, ids: ArrayLike<number>, C: number): Float32Array {
  const out = new Float32Array(ids.length * C);
  for (let t = 0; t < ids.length; t++) out.set(W.subarray(ids[t]! * C, ids[t]! * C + C), t * C);
  return out;
}

/**
 * dW (V, C): each row is the f32 sum of its tokens' dout rows, added one token at a time in ascending
 * token position starting from 0 — the order the GPU kernel follows, so the two agree bit for bit.
 * Ids outside [0, V) contribute nothing.
 */
export function embeddingBackwardRef(dout: Float32Array, ids: ArrayLike<number>, V: number, C: number): Float32Array {
  const dW = new Float32Array(V * C);
  for (let t = 0; t < ids.length; t++) {
    const v = ids[t]!;
    if (v < 0 || v >= V) continue;
    for (let c = 0; c < C; c++) dW[v * C + c] += dout[t * C + c]!; // rounds to f32 at each store, like the kernel
  }
  return dW;
}

/**
 * dW (V, C) from dout (N, C) and ids (N) i32; ids outside [0, V) contribute nothing. The token
 * positions are sorted by id (M = N rounded up to a power of two, m = log2 M, s = log2 SORT_TILE:
 * 1 + (m − s)(m − s + 3) / 2 dispatches when m > s, else 1; 6 for 8192 tokens), each row's range
 * is found (1), and the rows are summed (1).
 */
export function embeddingBackward(dout: Tensor, ids: Tensor, V: number): Tensor {
  const N = ids.size;
  const C = dout.shape[dout.shape.length - 1]!;
  const dW = Tensor.empty([V, C]); // (V, C)
  if (N === 0) {
    clearBuffer(dW.buffer, 0, dW.bytes);
    return dW;
  }
  const M = 2 ** Math.ceil(Math.log2(N));
  const tile = Math.min(M, SORT_TILE);
  const keys = Tensor.empty([M], "u32"); // (M) ids, ascending
  const pos = Tensor.empty([M], "u32"); // (M) their token positions, ascending within an id
  const sortBuffers = [ids.buffer, keys.buffer, pos.buffer];
  const local = pipeline("embedding_backward_sort", { LOCAL: true, TILE: tile }, { WG: SORT_WG });
  const step = pipeline("embedding_backward_sort", { LOCAL: false, TILE: tile }, { WG: SORT_WG });
  dispatch(local, sortBuffers, [N, M, 2, tile], [M / tile]);
  for (let k = 2 * tile; k <= M; k *= 2) {
    for (let j = k / 2; j >= tile; j /= 2) dispatch(step, sortBuffers, [N, M, k, j], strideGrid(M / 2, SORT_WG));
    dispatch(local, sortBuffers, [N, M, k, k], [M / tile]);
  }
  const start = Tensor.empty([V + 1], "u32"); // (V + 1) row v's tokens: pos[start[v] .. start[v + 1])
  dispatch(
    pipeline("embedding_backward_rows", {}, { WG: 64 }),
    [keys.buffer, start.buffer],
    [N, V],
    strideGrid(V + 1, 64),
  );
  const lanes = C % 4 === 0 ? 4 : 1;
  const blocks = Math.ceil(C / lanes / (GATHER_WG * GROUPS_PER_THREAD));
  const gather = pipeline("embedding_backward", { LANES: lanes, ROWS: GATHER_ROWS }, { WG: GATHER_WG });
  for (const [v0, rows] of rowRanges(V, C, dW.bytes)) {
    const w = span(dW.buffer, v0 * C, rows * C);
    const rowGroups = Math.ceil(rows / GATHER_ROWS);
    dispatch(
      gather,
      [start.buffer, pos.buffer, dout.buffer, w.binding],
      [C, v0, v0 + rows, v0 * C - w.base],
      [blocks, Math.min(rowGroups, 65535), Math.ceil(rowGroups / 65535)],
    );
  }
  return dW;
}

/** W: (V, C), ids: (N) i32 → (N, C); an id outside [0, V) gives a zero row. */
export function embedding(W: Tensor, ids: Tensor): Tensor {
  const [V, C] = W.shape as [number, number];
  if (ids.dtype !== "i32") throw new Error("embedding: ids must be i32");
  if (W.dtype !== "f32" && !isHalf(W.dtype)) throw new Error(`embedding: the table is ${W.dtype}, not a float tensor`);
  const half = isHalf(W.dtype) ? W.dtype : undefined;
  if (half && W.requiresGrad) throw new Error(`embedding: a ${half} table [${W.shape}] cannot take a gradient`);
  const bytes = elementBytes(W.dtype);
  const N = ids.size;
  const out = Tensor.empty([N, C]);
  for (const [v0, rows] of rowRanges(V, C, W.bytes, bytes)) {
    const w = span(W.storage, v0 * C, rows * C, false, bytes);
    dispatch(
      pipeline("embedding", halfDefine(half)),
      [ids.buffer, w.binding, out.buffer],
      [N, C, V, v0, v0 + rows, v0 * C - w.base],
      strideGrid(N * C, 64),
    );
  }
  // tied embeddings: the head's gradient of the same table is added to this one by backward()
  return record(out, "embedding", [W], (d) => [embeddingBackward(d, ids, V)]);
}
