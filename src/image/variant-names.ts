/**
 * The variant vocabulary, without sharp: topics, the hub and the viewer core parse variant
 * names without loading libvips.
 */

/** Target widths of the resized variants; `raw` is the camera JPEG untouched. */
export const VARIANT_WIDTHS = { low: 320, medium: 640, high: 1280 } as const;
export type ResizedVariant = keyof typeof VARIANT_WIDTHS;
/**
 * The variants made about once a second whether anyone watches or not, so snapshots and new
 * subscribers find a recent frame. The `auto` ladder steps through the resized ones only.
 */
export const REFRESHED_VARIANTS = ['raw', 'low', 'medium', 'high'] as const;
/**
 * `annotated`: the `medium` frame with the camera's name, the capture time and a voice
 * indicator drawn on it (src/image/annotation.ts). It costs nearly as much CPU again as
 * `medium` (see makeVariants), so it is made only for frames someone is watching it on.
 */
const ON_DEMAND_VARIANTS = ['annotated'] as const;
export const FRAME_VARIANTS = [...REFRESHED_VARIANTS, ...ON_DEMAND_VARIANTS] as const;
export type FrameVariant = (typeof FRAME_VARIANTS)[number];
export type RefreshedVariant = (typeof REFRESHED_VARIANTS)[number];

/** Whether a variant is refreshed unwatched (see REFRESHED_VARIANTS). */
export const isRefreshed = (variant: FrameVariant): variant is RefreshedVariant =>
  (REFRESHED_VARIANTS as readonly string[]).includes(variant);

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
