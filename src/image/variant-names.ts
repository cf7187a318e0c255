/**
 * The variant vocabulary, without sharp: topics, the hub and the viewer core parse variant
 * names without loading libvips.
 */

/** Target widths of the resized variants; `raw` is the camera JPEG untouched. */
export const VARIANT_WIDTHS = { low: 320, medium: 640, high: 1280 } as const;
export type ResizedVariant = keyof typeof VARIANT_WIDTHS;
export const FRAME_VARIANTS = ['raw', 'low', 'medium', 'high'] as const;
export type FrameVariant = (typeof FRAME_VARIANTS)[number];

export interface VariantImage {
  variant: FrameVariant;
  width: number;
  height: number;
  data: Uint8Array;
}

/** Why a worker dropped a frame instead of relaying it: its header disagreed, or libjpeg could not read it. */
export interface FrameRejection {
  reason: 'refused' | 'corrupt';
  message: string;
}
