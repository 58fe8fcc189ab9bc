// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}},
// then the tensors' bytes, little-endian, offsets relative to the end of the header. We pad the header
// with spaces to a multiple of 8 so that every tensor starts 8-byte aligned (what the Rust writer does).
// The reader checks everything a hostile file could lie about: header size, JSON, dtypes, shapes
// against offsets, offsets against the file size, overlaps and gaps.
import { readSync, closeSync, fstatSync } from "node:fs";
import { openRegular, writeFileAtomic } from "./files.ts";
import type { FileSum } from "./checksum.ts";
import { f16Value } from "./floats.ts";

export type DType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL"
  | "F8_E4M3"
  | "F8_E5M2";

export const DTYPE_BYTES: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

export class SafetensorsError extends Error {
  code = "E_SAFETENSORS";
}

export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** absolute byte offsets in the file */
  begin: number;
  end: number;
}

export interface TensorData {
  dtype: DType;
  shape: number[];
  data: ArrayBufferView;
}

const MAX_HEADER = 100 * 1024 * 1024; // the reference implementation's limit

// ---- writing ----

/** Write tensors (in the given order) and metadata to `path` atomically (temp file, then rename); returns its size and CRC-32. */
export function writeSafetensors(
  path: string,
  tensors: Record<string, TensorData>,
  metadata: Record<string, string> = {},
): FileSum {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (n !== t.data.byteLength)
      throw new Error(`safetensors: ${name} has ${t.data.byteLength} bytes for ${t.dtype}[${t.shape}] (${n} expected)`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = JSON.stringify(header);
  const raw = Buffer.byteLength(json);
  json += " ".repeat((8 - ((8 + raw) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return writeFileAtomic(path, [
    len,
    json,
    ...Object.values(tensors).map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  ]);
}

// ---- reading ----

export interface SafetensorsHeader {
  path: string;
  size: number;
  headerBytes: number;
  tensors: TensorEntry[];
  metadata: Record<string, string>;
}

/** Read and validate the header only (the file may be larger than memory). */
export function readHeader(path: string): SafetensorsHeader {
  const fd = openRegular(path); // a FIFO or device would block or never end
  try {
    const size = fstatSync(fd).size;
    if (size < 8)
      throw new SafetensorsError(
        `${path}: not a safetensors file (${size} bytes, shorter than the 8-byte header length)`,
      );
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const n = lenBuf.readBigUInt64LE();
    if (n > BigInt(MAX_HEADER))
      throw new SafetensorsError(
        `${path}: not a safetensors file (its first 8 bytes do not give a header length under 100 MiB)`,
      );
    if (Number(n) > size - 8)
      throw new SafetensorsError(`${path}: header length ${n} runs past the end of the ${size}-byte file (truncated?)`);
    const hb = Buffer.alloc(Number(n));
    readSync(fd, hb, 0, hb.length, 8);
    let h: any;
    try {
      h = JSON.parse(hb.toString("utf8"));
    } catch {
      throw new SafetensorsError(`${path}: the header is not valid JSON (not a safetensors file?)`);
    }
    if (!h || typeof h !== "object" || Array.isArray(h))
      throw new SafetensorsError(`${path}: the header is not a JSON object`);
    const base = 8 + Number(n);
    const tensors: TensorEntry[] = [];
    let metadata: Record<string, string> = {};
    for (const [name, v] of Object.entries<any>(h)) {
      if (name === "__metadata__") {
        if (v && typeof v === "object") metadata = v;
        continue;
      }
      if (!v || typeof v !== "object") throw new SafetensorsError(`${path}: tensor "${name}": entry is not an object`);
      if (!(v.dtype in DTYPE_BYTES))
        throw new SafetensorsError(`${path}: tensor "${name}": unknown dtype ${JSON.stringify(v.dtype)}`);
      if (!Array.isArray(v.shape) || !v.shape.every((d: unknown) => Number.isInteger(d) && (d as number) >= 0))
        throw new SafetensorsError(`${path}: tensor "${name}": shape must be a list of non-negative integers`);
      const o = v.data_offsets;
      if (
        !Array.isArray(o) ||
        o.length !== 2 ||
        !o.every((d: unknown) => Number.isInteger(d) && (d as number) >= 0) ||
        o[1] < o[0]
      )
        throw new SafetensorsError(
          `${path}: tensor "${name}": data_offsets must be [begin, end] with 0 <= begin <= end`,
        );
      const want = v.shape.reduce((a: number, b: number) => a * b, 1) * DTYPE_BYTES[v.dtype as DType];
      if (o[1] - o[0] !== want)
        throw new SafetensorsError(
          `${path}: tensor "${name}": ${v.dtype}[${v.shape}] needs ${want} bytes but its offsets span ${o[1] - o[0]}`,
        );
      if (base + o[1] > size)
        throw new SafetensorsError(
          `${path}: tensor "${name}": data ends at byte ${base + o[1]}, past the end of the ${size}-byte file (truncated?)`,
        );
      tensors.push({ name, dtype: v.dtype, shape: v.shape, begin: base + o[0], end: base + o[1] });
    }
    // the data must be covered exactly: no overlaps, no gaps (the reference reader's rule)
    const sorted = [...tensors].sort((a, b) => a.begin - b.begin);
    let at = base;
    for (const t of sorted) {
      if (t.begin < at) throw new SafetensorsError(`${path}: tensor "${t.name}" overlaps the tensor before it`);
      if (t.begin > at) throw new SafetensorsError(`${path}: a gap of ${t.begin - at} bytes before tensor "${t.name}"`);
      at = t.end;
    }
    if (at !== size)
      throw new SafetensorsError(
        `${path}: ${size - at} bytes after the last tensor (the reference reader refuses a file whose data does not end where the file ends)`,
      );
    return { path, size, headerBytes: Number(n), tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

/** Read one tensor's bytes (a copy) as a typed array of its dtype where JS has one. */
export function readTensor(h: SafetensorsHeader, name: string): TensorData {
  const t = h.tensors.find((x) => x.name === name);
  if (!t) throw new SafetensorsError(`${h.path}: no tensor "${name}"`);
  const buf = new ArrayBuffer(t.end - t.begin);
  const fd = openRegular(h.path);
  try {
    readSync(fd, new Uint8Array(buf), 0, buf.byteLength, t.begin);
  } finally {
    closeSync(fd);
  }
  return { dtype: t.dtype, shape: t.shape, data: typedView(t.dtype, buf) };
}

export function typedView(dtype: DType, buf: ArrayBuffer): ArrayBufferView {
  switch (dtype) {
    case "F64":
      return new Float64Array(buf);
    case "F32":
      return new Float32Array(buf);
    case "I64":
      return new BigInt64Array(buf);
    case "U64":
      return new BigUint64Array(buf);
    case "I32":
      return new Int32Array(buf);
    case "U32":
      return new Uint32Array(buf);
    case "I16":
      return new Int16Array(buf);
    case "U16":
    case "F16":
    case "BF16":
      return new Uint16Array(buf);
    case "I8":
      return new Int8Array(buf);
    default:
      return new Uint8Array(buf);
  }
}

// ---- decoding any dtype to numbers (for inspection and statistics) ----

function f8(b: number, expBits: number, manBits: number, bias: number, e4m3: boolean): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >> manBits) & ((1 << expBits) - 1),
    m = b & ((1 << manBits) - 1);
  if (e4m3) {
    if (e === 15 && m === 7) return NaN; // E4M3FN: no infinities, one NaN pattern
  } else if (e === (1 << expBits) - 1) return m ? NaN : s * Infinity;
  if (e === 0) return s * 2 ** (1 - bias) * (m / (1 << manBits));
  return s * 2 ** (e - bias) * (1 + m / (1 << manBits));
}

/** Element i of raw little-endian bytes of `dtype` as a JS number (BigInt types converted). */
export function decoder(dtype: DType, bytes: Uint8Array): (i: number) => number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "F64":
      return (i) => dv.getFloat64(i * 8, true);
    case "F32":
      return (i) => dv.getFloat32(i * 4, true);
    case "F16":
      return (i) => f16Value(dv.getUint16(i * 2, true));
    case "BF16": {
      const tmp = new DataView(new ArrayBuffer(4));
      return (i) => {
        tmp.setUint32(0, dv.getUint16(i * 2, true) << 16);
        return tmp.getFloat32(0);
      };
    }
    case "I64":
      return (i) => Number(dv.getBigInt64(i * 8, true));
    case "U64":
      return (i) => Number(dv.getBigUint64(i * 8, true));
    case "I32":
      return (i) => dv.getInt32(i * 4, true);
    case "U32":
      return (i) => dv.getUint32(i * 4, true);
    case "I16":
      return (i) => dv.getInt16(i * 2, true);
    case "U16":
      return (i) => dv.getUint16(i * 2, true);
    case "I8":
      return (i) => dv.getInt8(i);
    case "U8":
      return (i) => dv.getUint8(i);
    case "BOOL":
      return (i) => (dv.getUint8(i) ? 1 : 0);
    case "F8_E4M3":
      return (i) => f8(dv.getUint8(i), 4, 3, 7, true);
    case "F8_E5M2":
      return (i) => f8(dv.getUint8(i), 5, 2, 15, false);
  }
}

/** The file's bytes without reading them into memory (a read-only memory map). */
export function mapFile(path: string): Uint8Array {
  return Bun.mmap(path, { shared: false });
}
