import { randomBytes } from 'node:crypto';
import net from 'node:net';

/**
 * A minimal WebSocket client over node:net for the viewer swarm. `ws` spends most of its
 * time in per-message JS (buffer lists, event emitters, concat); a swarm process must receive
 * tens of thousands of 20 KB messages per second on one core, so this one parses frame
 * headers and hands the payload on as the chunks it arrived in, without copying.
 * It speaks only what a viewer needs: the handshake, binary/text messages, ping → pong, close.
 */
export interface WsLiteHandlers {
  onOpen(): void;
  /** A complete message as the slices it arrived in (usually one). */
  onMessage(chunks: Buffer[], length: number, binary: boolean): void;
  /** Close code from the server's close frame, or 1006 when the socket just ended. */
  onClose(code: number, reason: string): void;
  onError(err: Error): void;
}

enum State {
  Handshake,
  Header,
  Payload,
  Closed,
}

const MAX_HEADER_BYTES = 16 * 1024;

export class WsLite {
  readonly socket: net.Socket;
  private state = State.Handshake;
  private pending: Buffer | null = null;
  private remaining = 0;
  private opcode = 0;
  private fin = true;
  private control = false;
  private parts: Buffer[] = [];
  private messageLength = 0;
  private messageOpcode = 0;
  private closeCode = 1006;
  private closeReason = '';
  private closed = false;

  constructor(
    port: number,
    path: string,
    private readonly h: WsLiteHandlers,
  ) {
    this.socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    this.socket.once('connect', () => {
      const key = randomBytes(16).toString('base64');
      this.socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.once('error', (err) => {
      if (!this.closed) h.onError(err);
    });
    this.socket.once('close', () => this.finish());
  }

  /** Sends a close frame and ends the socket; the server's close is not awaited. */
  close(code = 1000): void {
    if (this.state === State.Closed || this.socket.destroyed) return;
    if (this.state !== State.Handshake) {
      const body = Buffer.alloc(2);
      body.writeUInt16BE(code);
      this.socket.write(maskedFrame(0x8, body));
    }
    this.socket.end();
    this.state = State.Closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.state = State.Closed;
    this.h.onClose(this.closeCode, this.closeReason);
  }

  private onData(chunk: Buffer): void {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    // Bounded: each pass consumes at least one byte or returns.
    while (buf.length > 0) {
      if (this.state === State.Handshake) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (buf.length > MAX_HEADER_BYTES) {
            this.fail(new Error('handshake response too long'));
            return;
          }
          this.pending = buf;
          return;
        }
        const head = buf.toString('latin1', 0, end);
        if (!head.startsWith('HTTP/1.1 101')) {
          this.fail(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
          return;
        }
        this.state = State.Header;
        buf = buf.subarray(end + 4);
        this.h.onOpen();
      } else if (this.state === State.Header) {
        const used = this.readHeader(buf);
        if (used === 0) {
          this.pending = buf;
          return;
        }
        buf = buf.subarray(used);
        if (this.remaining === 0) this.endFrame();
      } else if (this.state === State.Payload) {
        const take = Math.min(this.remaining, buf.length);
        this.addPayload(buf.subarray(0, take));
        this.remaining -= take;
        buf = buf.subarray(take);
        if (this.remaining === 0) this.endFrame();
      } else {
        return;
      }
    }
  }

  /** Parses a frame header at the start of buf; returns bytes used, 0 when incomplete. */
  private readHeader(buf: Buffer): number {
    if (buf.length < 2) return 0;
    const b0 = buf[0]!;
    const b1 = buf[1]!;
    let len = b1 & 0x7f;
    let used = 2;
    if (len === 126) {
      if (buf.length < 4) return 0;
      len = buf.readUInt16BE(2);
      used = 4;
    } else if (len === 127) {
      if (buf.length < 10) return 0;
      len = buf.readUInt32BE(2) * 2 ** 32 + buf.readUInt32BE(6);
      used = 10;
    }
    if (b1 & 0x80) used += 4; // servers must not mask, but skip the key if one does
    if (buf.length < used) return 0;
    this.fin = (b0 & 0x80) !== 0;
    this.opcode = b0 & 0x0f;
    this.control = this.opcode >= 0x8;
    this.remaining = len;
    this.state = State.Payload;
    if (!this.control && this.opcode !== 0) {
      this.messageOpcode = this.opcode;
      this.parts = [];
      this.messageLength = 0;
    }
    return used;
  }

  private controlParts: Buffer[] = [];

  private addPayload(part: Buffer): void {
    if (this.control) this.controlParts.push(part);
    else {
      this.parts.push(part);
      this.messageLength += part.length;
    }
  }

  private endFrame(): void {
    this.state = State.Header;
    if (this.control) {
      const body = Buffer.concat(this.controlParts);
      this.controlParts = [];
      if (this.opcode === 0x9) this.socket.write(maskedFrame(0xa, body));
      else if (this.opcode === 0x8) {
        this.closeCode = body.length >= 2 ? body.readUInt16BE(0) : 1005;
        this.closeReason = body.subarray(2).toString();
        this.close(this.closeCode === 1005 ? 1000 : this.closeCode);
      }
      return;
    }
    if (!this.fin) return;
    const parts = this.parts;
    this.parts = [];
    this.h.onMessage(parts, this.messageLength, this.messageOpcode === 0x2);
  }

  private fail(err: Error): void {
    this.h.onError(err);
    this.socket.destroy();
  }
}

/** A client frame: clients must mask, and a zero mask keeps the payload bytes as they are. */
function maskedFrame(opcode: number, body: Buffer): Buffer {
  if (body.length > 125) throw new Error('control frame body over 125 bytes');
  const out = Buffer.alloc(6 + body.length);
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | body.length;
  // mask key 0,0,0,0 (already zero), so body is copied unmasked.
  body.copy(out, 6);
  return out;
}
