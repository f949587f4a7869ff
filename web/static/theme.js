// Brand colours from data-* attributes (no inline styles under the CSP), with text colours
// that keep enough contrast whatever colour the clinic picked.

function channel(c) {
  const v = c / 255;
  return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
}

function rgb(hex) {
  const m = /^#([0-9a-f]{6})$/i.exec(hex || "");
  if (!m) return null;
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function luminance([r, g, b]) {
  return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
}

function contrast(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

function hex([r, g, b]) {
  return `#${[r, g, b].map((v) => Math.round(v).toString(16).padStart(2, "0")).join("")}`;
}

// Darken a colour until it reads as text on white (4.5:1).
function ink(colour) {
  let c = colour;
  for (let i = 0; i < 20 && contrast(c, [255, 255, 255]) < 4.5; i += 1) c = c.map((v) => v * 0.88);
  return c;
}

export function applyBrand(target, primaryHex, accentHex) {
  const root = target || document.documentElement;
  const primary = rgb(primaryHex);
  const accent = rgb(accentHex);
  if (primary) {
    const onPrimary = contrast(primary, [255, 255, 255]) >= 4.5 ? [255, 255, 255] : [17, 24, 39];
    root.style.setProperty("--primary", hex(primary));
    root.style.setProperty("--on-primary", hex(onPrimary));
    root.style.setProperty("--primary-ink", hex(ink(primary)));
    root.style.setProperty("--primary-soft", `rgba(${primary.join(",")}, 0.09)`);
  }
  if (accent) {
    root.style.setProperty("--accent", hex(accent));
    root.style.setProperty("--accent-soft", `rgba(${accent.join(",")}, 0.22)`);
  }
}

export function applyBrandFromBody() {
  const { primary, accent } = document.body.dataset;
  applyBrand(document.documentElement, primary, accent);
}
