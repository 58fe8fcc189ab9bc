export { Tensor, numel, type DType, type HostArray } from "./tensor.ts";
export { scope, scopeAsync, keep } from "./scope.ts";
export { noGrad, record, zeroGrad, isGradEnabled, type Node } from "./autograd.ts";
