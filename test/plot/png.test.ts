// plot's PNG: a valid file (signature, IHDR, every chunk's CRC by zlib's own CRC-32), its pixels
// decoded here (inflate + PNG row filters, independent of resvg) and checked where the picture
// puts known things, the mark that lets --overwrite recognise it, and the refusal without a font.
import { describe, expect, test } from "bun:test";
import { crc32, inflateSync } from "node:zlib";
import { isPlotHead, PLOT_MARK } from "../../lib/plot/mark.ts";
import { renderPicture } from "../../lib/plot/picture.ts";
import { PNG_SIGNATURE, svgToPng } from "../../lib/plot/png.ts";
import type { Series } from "../../lib/plot/scale.ts";
import { renderSvg } from "../../lib/plot/svg.ts";

interface Chunk {
  type: string;
  data: Uint8Array;
  crcOk: boolean;
}

function chunks(png: Uint8Array): Chunk[] {
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out: Chunk[] = [];
  for (let at = 8; at < png.length; ) {
    const n = dv.getUint32(at);
    const type = new TextDecoder().decode(png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + n);
    out.push({ type, data, crcOk: dv.getUint32(at + 8 + n) === crc32(png.subarray(at + 4, at + 8 + n)) });
    at += 12 + n;
  }
  return out;
}

/** RGBA pixels of an 8-bit RGBA, non-interlaced PNG (the only kind resvg writes). */
function decode(png: Uint8Array): { w: number; h: number; px: (x: number, y: number) => number[] } {
  const cs = chunks(png);
  const ihdr = new DataView(cs[0]!.data.buffer, cs[0]!.data.byteOffset, 13);
  const w = ihdr.getUint32(0),
    h = ihdr.getUint32(4);
  const raw = inflateSync(Buffer.concat(cs.filter((c) => c.type === "IDAT").map((c) => c.data)));
  const stride = w * 4,
    img = new Uint8Array(h * stride);
  for (let y = 0; y < h; y++) {
    const f = raw[y * (stride + 1)]!;
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i]!;
      const a = i >= 4 ? img[y * stride + i - 4]! : 0,
        b = y > 0 ? img[(y - 1) * stride + i]! : 0,
        c = i >= 4 && y > 0 ? img[(y - 1) * stride + i - 4]! : 0;
      const p = a + b - c,
        pa = Math.abs(p - a),
        pb = Math.abs(p - b),
        pc = Math.abs(p - c);
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][f]!;
      img[y * stride + i] = (x + pred) & 255;
    }
  }
  return { w, h, px: (x, y) => [...img.subarray(y * stride + x * 4, y * stride + x * 4 + 4)] };
}

// a flat run: its line (2 px wide, tab10 blue #1f77b4) is centred on y = 40 + 385 / 2 = 232.5, so
// it covers pixel row 232 fully and rows 231 and 233 by half
const flat: Series[] = [
  {
    label: "flat",
    pts: [
      [0, 2],
      [100, 2],
    ],
    evals: [],
  },
];
const o = { metric: "loss", smooth: 0, title: "loss per step" };

describe("svgToPng", async () => {
  const png = (await renderPicture(flat, o, "png", "x.png")) as Uint8Array;
  const img = decode(png);

  test("a valid PNG of the picture's size, marked as plot's in its first KiB", () => {
    expect([...png.subarray(0, 8)]).toEqual([...PNG_SIGNATURE]);
    const cs = chunks(png);
    expect(cs.map((c) => c.type)[0]).toBe("IHDR");
    expect(cs[cs.length - 1]!.type).toBe("IEND");
    expect(cs.every((c) => c.crcOk)).toBe(true);
    expect([img.w, img.h]).toEqual([800, 480]);
    expect([...cs[0]!.data.subarray(8, 13)]).toEqual([8, 6, 0, 0, 0]); // 8-bit RGBA, no interlace
    expect(cs[1]!.type).toBe("tEXt");
    expect(new TextDecoder().decode(cs[1]!.data)).toBe("Software\0bunlm plot");
    expect(isPlotHead(png.subarray(0, 1024))).toBe(true);
  });

  test("its pixels: white ground, the run's line in its colour, the title centred over the plot", () => {
    expect(img.px(0, 0)).toEqual([255, 255, 255, 255]);
    expect(img.px(790, 470)).toEqual([255, 255, 255, 255]);
    // full coverage of the line: its colour exactly (resvg blends in 8 bits; an opaque stroke needs none)
    for (const x of [100, 350, 600]) expect(img.px(x, 232)).toEqual([0x1f, 0x77, 0xb4, 255]);
    // half covered rows are a blend between the line and the white ground
    const half = img.px(350, 231);
    expect(half[0]!).toBeGreaterThan(0x1f);
    expect(half[0]!).toBeLessThan(255);
    // text needs a font: the title's dark pixels (rows 8..26) span about 90 px centred on x = 350
    let lo = 800,
      hi = -1;
    for (let y = 8; y <= 26; y++)
      for (let x = 0; x < 800; x++)
        if (img.px(x, y)[0]! < 128) {
          lo = Math.min(lo, x);
          hi = Math.max(hi, x);
        }
    expect(hi - lo).toBeGreaterThan(60);
    expect(hi - lo).toBeLessThan(140);
    expect(Math.abs((lo + hi) / 2 - 350)).toBeLessThanOrEqual(3);
  });

  test("the legend's label is drawn beside its line", () => {
    // legend line at y = 50 from x = 644 to 668, label from x = 674
    expect(img.px(656, 50)).toEqual([0x1f, 0x77, 0xb4, 255]);
    let dark = 0;
    for (let y = 44; y <= 58; y++) for (let x = 674; x < 720; x++) if (img.px(x, y)[0]! < 128) dark++;
    expect(dark).toBeGreaterThan(20);
  });
});

test("without a font the PNG is refused, naming the file and what to install", async () => {
  const svg = renderSvg(flat, o);
  await expect(svgToPng(svg, "runs/loss.png", { systemFonts: false })).rejects.toThrow(
    "runs/loss.png: no font found to draw the picture's text (install one, e.g. Debian's fonts-dejavu-core), or give a name ending in .svg",
  );
});

test("isPlotHead: plot's SVG and PNG, not someone else's", async () => {
  const svg = renderSvg(flat, o);
  expect(isPlotHead(new TextEncoder().encode(svg.slice(0, 1024)))).toBe(true);
  expect(isPlotHead(new TextEncoder().encode(`<svg>my figure</svg>${PLOT_MARK.slice(0, 10)}`))).toBe(false);
  // resvg's own PNG of the same picture has no mark
  const { Resvg } = await import("@resvg/resvg-js");
  expect(isPlotHead(new Resvg(svg).render().asPng().subarray(0, 1024))).toBe(false);
});
