export { backward } from "./backward.ts";
export { add, mul, scale, fill, fillLike, clone, addInto, addRef, mulRef, scaleRef } from "./elementwise.ts";
export {
  reduceRows,
  sumRows,
  meanRows,
  maxRows,
  reduceRowsRef,
  reduceRowsBackwardRef,
  type ReduceOp,
} from "./reduce_rows.ts";
export {
  matmul,
  matmulInto,
  matmulRef,
  type MatmulOpts,
  subgroupMatrixPath,
  type SubgroupMatrixPath,
} from "./matmul.ts";
export {
  matmulVariant,
  matmulCandidates,
  withMatmulPrecision,
  matmulPrecision,
  type MatmulVariant,
  type MatmulShape,
  type MatmulPrecision,
} from "./_matmul_variants.ts";
