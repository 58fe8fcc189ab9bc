export { Tensor, numel, type DType, type HostArray } from "./tensor.ts";
export { scope, scopeAsync, keep } from "./scope.ts";
export { backward, noGrad, record, zeroGrad, isGradEnabled, setLossScale, type Node } from "./autograd.ts";
