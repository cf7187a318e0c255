/** Turns a byte stream of s16le into Int16Arrays, carrying an odd byte across reads. */
export class PcmReader {
  private carry: number | undefined;

  constructor(private readonly onSamples: (samples: Int16Array) => void) {}

  push(chunk: Buffer): void {
    let bytes = chunk;
    if (this.carry !== undefined) {
      bytes = Buffer.concat([Buffer.from([this.carry]), chunk]);
      this.carry = undefined;
    }
    if (bytes.length % 2) {
      this.carry = bytes[bytes.length - 1];
      bytes = bytes.subarray(0, bytes.length - 1);
    }
    if (bytes.length === 0) return;
    // A fresh, aligned copy: the pipe's Buffer may start at an odd offset of a shared pool.
    const samples = new Int16Array(bytes.length / 2);
    new Uint8Array(samples.buffer).set(bytes);
    this.onSamples(samples);
  }
}
