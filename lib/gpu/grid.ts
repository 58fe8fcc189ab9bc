// Dispatch grids shared by the kernels' launch code (ops, optimizer).

/** Workgroups for a grid-stride kernel over n elements (capped: the loop covers the rest). */
export function strideGrid(n: number, wg = 256, cap = 4096): [number] {
  return [Math.max(1, Math.min(Math.ceil(n / wg), cap))];
}

/** One workgroup per row, folded into 2D when there are more rows than a grid dimension holds. */
export function rowGrid(rows: number): [number, number] {
  return [Math.min(rows, 65535), Math.ceil(rows / 65535)];
}
