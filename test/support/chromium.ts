/**
 * Debian's `chromium` as the browser tests drive it with playwright-core: headless, no sandbox
 * (CI runs as root), no GPU, and none of the background traffic a first run starts.
 */
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
