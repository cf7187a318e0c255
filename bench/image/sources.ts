import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

/**
 * The bench's source images, generated (no download, the same bytes on every run):
 * photo-like pictures at 2040×1356, the size of most of DIV2K's validation set, which
 * imgproxy's benchmark uses. Each is saved as imgproxy's dataset script saves its PNGs
 * (`vips copy`: JPEG Q75, WebP Q75, AVIF Q65 effort 0), and a 1920×1080 crop is saved as a
 * camera or phone would (baseline JPEG q85, 4:2:0) for the job-path and variant cases.
 */
export const PICTURE = { width: 2040, height: 1356 } as const;
export const HD = { width: 1920, height: 1080 } as const;
const PICTURES = 3;

export interface SourceSet {
  /** imgproxy's workload: the sources of each format, decoded and re-encoded to the same format. */
  imgproxy: Record<'jpeg' | 'webp' | 'avif', string[]>;
  /** 1920×1080 JPEGs. */
  hd: string[];
  /** Mean bytes of each kind of file, for the conditions. */
  meanBytes: Record<'jpeg' | 'webp' | 'avif' | 'hd', number>;
}

/** mulberry32: a small seeded generator, so every run draws the same pictures. */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/**
 * Value noise at one scale (a random grid, smoothly interpolated), added into `out`. Summed
 * over cells from 512 px down to 4 px with a slowly falling amplitude, it has the spectrum of a
 * textured photograph; the sizes it encodes to are checked against imgproxy's in the report.
 */
function addOctave(
  out: Float32Array,
  width: number,
  height: number,
  cell: number,
  amp: number,
  next: () => number,
) {
  const gw = Math.ceil(width / cell) + 2;
  const gh = Math.ceil(height / cell) + 2;
  const grid = Float32Array.from({ length: gw * gh }, () => next() * 2 - 1);
  const smooth = (t: number) => t * t * (3 - 2 * t);
  for (let y = 0; y < height; y++) {
    const iy = Math.floor(y / cell);
    const ty = smooth(y / cell - iy);
    for (let x = 0; x < width; x++) {
      const ix = Math.floor(x / cell);
      const tx = smooth(x / cell - ix);
      const at = iy * gw + ix;
      const top = grid[at]! + (grid[at + 1]! - grid[at]!) * tx;
      const bottom = grid[at + gw]! + (grid[at + gw + 1]! - grid[at + gw]!) * tx;
      out[y * width + x]! += amp * (top + (bottom - top) * ty);
    }
  }
}

/**
 * One picture as raw RGB: luma texture at eight scales, slow chroma, hard-edged regions (a
 * thresholded noise field, as objects against a background) and sensor grain.
 */
function photo(seed: number): Buffer {
  const { width, height } = PICTURE;
  const next = random(seed);
  const n = width * height;
  const luma = new Float32Array(n);
  const red = new Float32Array(n);
  const blue = new Float32Array(n);
  const regions = new Float32Array(n);
  for (const cell of [512, 256, 128, 64, 32, 16, 8, 4])
    addOctave(luma, width, height, cell, 12 * cell ** 0.2, next);
  for (const cell of [512, 128, 32]) {
    addOctave(red, width, height, cell, 1.5 * cell ** 0.5, next);
    addOctave(blue, width, height, cell, 1.5 * cell ** 0.5, next);
  }
  for (const cell of [300, 150, 75, 37]) addOctave(regions, width, height, cell, cell, next);
  const rgb = new Uint8ClampedArray(n * 3);
  for (let i = 0; i < n; i++) {
    let l = 118 + luma[i]! + (next() - 0.5) * 14;
    let r = red[i]!;
    let b = blue[i]!;
    if (regions[i]! > 0) {
      l += 50;
      r += 8;
    } else if (regions[i]! < -200) {
      l -= 50;
      b += 10;
    }
    rgb[i * 3] = l + 1.4 * r;
    rgb[i * 3 + 1] = l - 0.34 * b - 0.71 * r;
    rgb[i * 3 + 2] = l + 1.77 * b;
  }
  return Buffer.from(rgb.buffer);
}

/** Writes the source set into `dir` (about 5 s on 2 cores, most of it drawing the pictures). */
export async function writeSources(dir: string): Promise<SourceSet> {
  const set: SourceSet = {
    imgproxy: { jpeg: [], webp: [], avif: [] },
    hd: [],
    meanBytes: { jpeg: 0, webp: 0, avif: 0, hd: 0 },
  };
  const raw = { width: PICTURE.width, height: PICTURE.height, channels: 3 as const };
  const save = (kind: keyof SourceSet['meanBytes'], name: string, data: Buffer) => {
    const file = join(dir, name);
    writeFileSync(file, data);
    set.meanBytes[kind] += data.length / PICTURES;
    return file;
  };
  for (let i = 0; i < PICTURES; i++) {
    const pixels = photo(i + 1);
    const image = () => sharp(pixels, { raw });
    set.imgproxy.jpeg.push(save('jpeg', `${i}.jpg`, await image().jpeg({ quality: 75 }).toBuffer()));
    set.imgproxy.webp.push(save('webp', `${i}.webp`, await image().webp({ quality: 75 }).toBuffer()));
    set.imgproxy.avif.push(
      save('avif', `${i}.avif`, await image().avif({ quality: 65, effort: 0 }).toBuffer()),
    );
    const crop = {
      left: (PICTURE.width - HD.width) >> 1,
      top: (PICTURE.height - HD.height) >> 1,
      ...HD,
    };
    set.hd.push(save('hd', `${i}-1080p.jpg`, await image().extract(crop).jpeg({ quality: 85 }).toBuffer()));
  }
  return set;
}
