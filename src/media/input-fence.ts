/**
 * The one place ffmpeg's arguments for reading an uploader's bytes are built, for video and
 * audio jobs alike. An upload is hostile: left to its probe, ffmpeg reads a body that starts
 * like a playlist or manifest (HLS, DASH, ffconcat, SDP) as one, and opens the local files and
 * URLs it names. Three fences, all checked on the bundled 4.1:
 * - `-f <demuxer>`: the demuxer chosen from the sniffed first bytes, never ffmpeg's probe;
 * - `-format_whitelist <accepted>`: no other demuxer may open at any depth (DASH ignores the
 *   protocol whitelist in 4.1; this is what stops it);
 * - `-protocol_whitelist file` (or `pipe` for stdin): no network protocol, ever.
 * No `-safe 0` and no `-enable_drefs` anywhere: a MOV's data references stay closed.
 * And `-max_alloc`: no single allocation over 64 MiB, so a header cannot make ffmpeg allocate
 * what it claims (a 611-byte MP4 declaring 20 million samples in one chunk took 481 MB of RSS
 * to probe; with the cap, 11 MB). A 4K frame is 12 MB.
 */
/** The largest single allocation ffmpeg may make while reading an upload. */
export const MAX_ALLOC_BYTES = 64 * 1024 * 1024;

/**
 * The most pixels per frame a video upload's decoder accepts (`-max_pixels`, an input option):
 * 8K UHD. A 770 KB MOV of 8192×8192 frames otherwise decodes, splits and encodes at full size.
 */
export const MAX_SOURCE_PIXELS = 7680 * 4320;

export interface FencedInput {
  /** The sniffed container's demuxer; must be one of `accepted`. */
  demuxer: string;
  /** Every demuxer this kind of upload may be (VIDEO_DEMUXERS, AUDIO_DEMUXERS). */
  accepted: readonly string[];
  /** An absolute path the daemon wrote the upload to, or 'stdin' for bytes piped to ffmpeg. */
  from: string;
  /** Input options to go before `-i` (e.g. `-t 3601`, `-threads 1`); never a protocol or format option. */
  options?: readonly string[];
}

/**
 * `-protocol_whitelist … -format_whitelist … -f <demuxer> -i <input>` for one upload. A file
 * is named `file:<path>` so no part of it is read as a protocol prefix.
 *
 * @example
 *   fencedInputArgs({ demuxer: 'mov', accepted: VIDEO_DEMUXERS, from: '/var/lib/framehub/work/x' })
 *   // ['-max_alloc', '67108864', '-protocol_whitelist', 'file', '-format_whitelist', 'mov,matroska,avi,mpegts', '-f', 'mov', '-i', 'file:/var/…/x']
 */
export function fencedInputArgs(input: FencedInput): string[] {
  if (!input.accepted.includes(input.demuxer)) {
    throw new Error(`demuxer ${input.demuxer} is not an accepted container`);
  }
  const stdin = input.from === 'stdin';
  if (!stdin && !input.from.startsWith('/')) throw new Error('a fenced input file must be an absolute path');
  return [
    ...['-max_alloc', String(MAX_ALLOC_BYTES)],
    ...['-protocol_whitelist', stdin ? 'pipe' : 'file'],
    ...['-format_whitelist', input.accepted.join(',')],
    ...['-f', input.demuxer],
    ...(input.options ?? []),
    ...['-i', stdin ? 'pipe:0' : `file:${input.from}`],
  ];
}
