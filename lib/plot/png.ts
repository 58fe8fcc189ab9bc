// The SVG picture as a PNG, rasterised by resvg (@resvg/resvg-js: Rust's resvg through N-API, which
// Bun loads). resvg draws text only with a font it finds among the system's (/usr/share/fonts, …);
// without one it would drop every label silently, so a font is probed first and its absence refused.
// A tEXt chunk "Software: bunlm plot" marks the file as plot's own (mark.ts).
import { InputError } from "../base/errors.ts";
import { PNG_SOFTWARE } from "./mark.ts";
import { FONTS } from "./svg.ts";

export const PNG_SIGNATURE = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export interface PngOptions {
  /** look for fonts among the system's (false only shows what happens on a machine without any) */
  systemFonts?: boolean;
}

type ResvgModule = typeof import("@resvg/resvg-js");

async function loadResvg(where: string): Promise<ResvgModule> {
  try {
    return await import("@resvg/resvg-js");
  } catch (e) {
    // its native part is one package per platform; a platform without one cannot draw PNG
    throw new InputError(
      `${where}: the PNG renderer (@resvg/resvg-js) does not load here (${(e as Error).message.split("\n")[0]}); give a name ending in .svg`,
    );
  }
}

// one digit in the families the picture uses: it has a box only when some font has a glyph
const PROBE = `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><text x="2" y="15" font-family="${FONTS}" font-size="12">0</text></svg>`;

/** A PNG chunk: length, type, data, CRC-32 of type and data. */
function chunk(type: string, data: Uint8Array): Uint8Array {
  const body = new Uint8Array(4 + data.length);
  body.set(new TextEncoder().encode(type), 0);
  body.set(data, 4);
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  out.set(body, 4);
  dv.setUint32(8 + data.length, Bun.hash.crc32(body));
  return out;
}

/** `svg` rasterised at its own size; `where` (the output file) names the file in a refusal. */
export async function svgToPng(svg: string, where: string, o: PngOptions = {}): Promise<Uint8Array> {
  const { Resvg } = await loadResvg(where);
  const font = { loadSystemFonts: o.systemFonts ?? true };
  if (!new Resvg(PROBE, { font }).innerBBox())
    throw new InputError(
      `${where}: no font found to draw the picture's text (install one, e.g. Debian's fonts-dejavu-core), or give a name ending in .svg`,
    );
  const png = new Uint8Array(new Resvg(svg, { font }).render().asPng());
  // the tEXt chunk goes right after IHDR (8-byte signature + 25-byte IHDR chunk), inside the first KiB
  const text = chunk("tEXt", new TextEncoder().encode(`Software\0${PNG_SOFTWARE}`));
  const out = new Uint8Array(png.length + text.length);
  out.set(png.subarray(0, 33), 0);
  out.set(text, 33);
  out.set(png.subarray(33), 33 + text.length);
  return out;
}
