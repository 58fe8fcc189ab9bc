export { add, mul, scale, fill, fillLike, clone, addInto, addRef, mulRef, scaleRef } from "./elementwise.ts";
export { reduceRows, sumRows, meanRows, maxRows, reduceRowsRef, reduceRowsBackwardRef, type ReduceOp } from "./reduce.ts";
export { matmul, matmulInto, matmulRef, type MatmulOpts } from "./matmul.ts";
export { matmulVariant, matmulCandidates, setMatmulPrecision, matmulPrecision, type MatmulVariant, type MatmulShape, type MatmulPrecision } from "./matmul_kernels.ts";
