export {
  initGpu,
  gpu,
  Usage,
  MapMode,
  freeBuffer,
  scratchBuffer,
  scratchOutBuffer,
  takeDeviceErrors,
} from "./context.ts";
export { getGpu, GpuUnavailableError, DRIVER_HINT, type Gpu, type AdapterSummary } from "./device.ts";
export { loadProvider, providerName, type ProviderName } from "./provider.ts";
export {
  acquireBuffer,
  releaseBuffer,
  trimPool,
  poolStats,
  bufferId,
  sizeClass,
  maxTensorBytes,
  formatBytes,
  TooLargeError,
} from "./pool.ts";
export { pipeline, kernelSource, applyDefines, checkPipelines, type Defines, type Constants } from "./pipelines.ts";
export {
  dispatch,
  copyBuffer,
  clearBuffer,
  flush,
  flushNoWait,
  hasPending,
  dispatchStats,
  type Binding,
  type Scalar,
} from "./dispatch.ts";
export { readBuffer, readBuffers, writeBuffer } from "./transfer.ts";
export { settle } from "./wait.ts";
export {
  setMaxBinding,
  maxBindingBytes,
  maxSpanElements,
  bindingAlign,
  span,
  elementRanges,
  rowRanges,
  type Span,
} from "./bindings.ts";
