// A horizontal bar chart as inline SVG built with DOM calls (no library, no style attributes: the CSP
// allows only the stylesheet), its numbers also given as text for screen readers.

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 640, LABEL = 200, BAR = 22, GAP = 6, VALUE = 90;

function node(tag, attrs = {}, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

function clip(text, max = 28) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// bars: [{label, value}]; format(value) -> text.
export function barChart(title, bars, format = String) {
  const height = Math.max(1, bars.length) * (BAR + GAP) + GAP;
  const svg = node("svg", {class: "chart", viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": title,
                           "data-testid": "usage-chart"});
  svg.append(node("title", {}, title));
  const top = Math.max(0, ...bars.map(b => b.value));
  const span = WIDTH - LABEL - VALUE;
  bars.forEach((bar, i) => {
    const y = GAP + i * (BAR + GAP);
    const width = top > 0 ? Math.max(1, (bar.value / top) * span) : 1;
    const group = node("g", {"data-testid": "usage-bar", "data-label": bar.label});
    group.append(node("text", {x: 0, y: y + BAR * 0.7}, clip(bar.label)),
                 node("rect", {class: "bar", x: LABEL, y, width: width.toFixed(1), height: BAR, rx: 3}),
                 node("text", {x: LABEL + width + 6, y: y + BAR * 0.7}, format(bar.value)));
    svg.append(group);
  });
  return svg;
}
