// Debian's Chromium as this project drives it: /usr/bin/chromium (never a browser download of
// playwright's own), headless, no sandbox (CI runs as root), and no background traffic to the
// network, which this machine closes. Playwright gives each launch a fresh, empty profile.

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
