// Minimal live viewer: one camera over /ws, decoding msgpack frame records.
const params = new URLSearchParams(location.search);
const topic = `cam/${params.get('camera') ?? 'demo'}/${params.get('variant') ?? 'medium'}`;
const img = document.getElementById('frame');
const status = document.getElementById('status');
let frames = 0;
let lastUrl;

function connect(delay = 500) {
  const ws = new WebSocket(
    `${location.origin.replace(/^http/, 'ws')}/ws?topics=${encodeURIComponent(topic)}`,
  );
  ws.binaryType = 'arraybuffer';
  ws.onmessage = (ev) => {
    const rec = msgpackr.unpack(new Uint8Array(ev.data));
    if (rec.type !== 'frame') return;
    frames++;
    if (lastUrl) URL.revokeObjectURL(lastUrl);
    lastUrl = URL.createObjectURL(new Blob([rec.data], { type: rec.mime }));
    img.src = lastUrl;
    status.textContent = `${rec.topic} seq ${rec.seq} · ${rec.width}×${rec.height} · ${Date.now() - rec.ts} ms · ${frames} frames`;
  };
  ws.onopen = () => {
    delay = 500;
  };
  ws.onclose = () => {
    status.textContent = 'disconnected, retrying…';
    setTimeout(() => connect(Math.min(delay * 2, 10000)), delay);
  };
}
connect();
