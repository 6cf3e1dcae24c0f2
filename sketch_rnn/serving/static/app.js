// Sketch-RNN "finish my drawing": draw on the board; the server's model proposes endings.
//
// Coordinates: the board's EXTENT data units span its width (QuickDraw sketches, as in the
// sketch-rnn data sets, span about 256 units). The server speaks stroke-3 in data units:
// [dx, dy, pen], pen = 1 lifts the pen after that point; the first point of the first
// stroke is the origin (as quickdraw.lines_to_stroke3 converts drawings).
"use strict";

const EXTENT = 256;          // data units across the board
const MIN_STEP = 4;          // data units between kept points (the data is simplified too)
const board = document.getElementById("board");
const ctx = board.getContext("2d");
const $ = (id) => document.getElementById(id);

const state = {
  mode: "finish", strokes: [], current: null, results: [], info: null,
  requestId: 0, sent: 0,
};

function colour(i, n) { return `hsl(${Math.round((360 * i) / Math.max(n, 1))}, 75%, 42%)`; }

// ------------------------------------------------------------------ geometry
function toData(event) {
  const r = board.getBoundingClientRect();
  const px = ((event.clientX - r.left) * board.width) / r.width;
  const py = ((event.clientY - r.top) * board.height) / r.height;
  return [(px * EXTENT) / board.width, (py * EXTENT) / board.width];
}

function toBoard(p) { return [(p[0] * board.width) / EXTENT, (p[1] * board.width) / EXTENT]; }

// The user's polylines (absolute data units) -> stroke-3 rows.
function toStroke3(strokes) {
  const rows = [];
  let prev = null;
  for (const s of strokes) {
    s.forEach((p, j) => {
      const last = j === s.length - 1 ? 1 : 0;
      if (prev === null) {
        prev = p;
        if (s.length === 1) rows.push([0, 0, 1]);
        return;
      }
      rows.push([+(p[0] - prev[0]).toFixed(2), +(p[1] - prev[1]).toFixed(2), last]);
      prev = p;
    });
  }
  return rows;
}

// Stroke-3 rows from an absolute start point -> polylines; penUp: is the pen lifted
// before the first row (true after a finished stroke, and for a sketch from nothing).
function toLines(rows, start, penUp) {
  const lines = [];
  let pos = start.slice();
  let line = null;
  if (!penUp) { line = [pos]; lines.push(line); }
  for (const [dx, dy, pen] of rows) {
    pos = [pos[0] + dx, pos[1] + dy];
    if (line === null) { line = [pos]; lines.push(line); } else { line.push(pos); }
    if (pen > 0.5) line = null;
  }
  return lines;
}

function lastPoint() {
  const s = state.strokes[state.strokes.length - 1];
  return s[s.length - 1];
}

function strokeLines(c, lines, map, style, width) {
  c.strokeStyle = style;
  c.lineWidth = width;
  c.lineCap = c.lineJoin = "round";
  for (const l of lines) {
    c.beginPath();
    l.forEach((p, i) => { const q = map(p); if (i === 0) c.moveTo(q[0], q[1]); else c.lineTo(q[0], q[1]); });
    if (l.length === 1) { const q = map(l[0]); c.lineTo(q[0] + 0.5, q[1]); }
    c.stroke();
  }
}

// ------------------------------------------------------------------ drawing
function redrawBoard() {
  ctx.clearRect(0, 0, board.width, board.height);
  if (state.mode === "finish" && state.strokes.length) {
    ctx.globalAlpha = 0.35;
    state.results.forEach((lines, i) => strokeLines(ctx, lines, toBoard, colour(i, state.results.length), 3));
    ctx.globalAlpha = 1;
  }
  if (state.mode !== "sample") strokeLines(ctx, state.strokes, toBoard, "#111", 4);
}

// Small canvases: [{lines, colour}] groups fitted together into the box.
function drawSmall(groups) {
  const c = document.createElement("canvas");
  c.width = c.height = 168;
  c.className = "ending";
  const pts = groups.flatMap((g) => g.lines.flat());
  if (!pts.length) {  // the model ended the sketch at once
    const g2 = c.getContext("2d");
    g2.fillStyle = "#999";
    g2.font = "13px sans-serif";
    g2.fillText("(ended at once)", 36, 88);
  } else {
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const x0 = Math.min(...xs), y0 = Math.min(...ys);
    const span = Math.max(Math.max(...xs) - x0, Math.max(...ys) - y0, 1e-6);
    const k = (c.width - 20) / span;
    const ox = (c.width - k * (Math.max(...xs) - x0)) / 2, oy = (c.height - k * (Math.max(...ys) - y0)) / 2;
    const g2 = c.getContext("2d");
    for (const g of groups) strokeLines(g2, g.lines, (p) => [ox + k * (p[0] - x0), oy + k * (p[1] - y0)], g.colour, 2);
  }
  return c;
}

function showResults(sketches, fromPrefix) {
  const box = $("endings");
  box.replaceChildren();
  const n = sketches.length;
  if (fromPrefix) {
    const start = lastPoint();
    state.results = sketches.map((rows) => toLines(rows, start, true));
    state.results.forEach((lines, i) => {
      const c = drawSmall([{ lines: state.strokes, colour: "#999" }, { lines, colour: colour(i, n) }]);
      c.dataset.points = sketches[i].length;
      box.appendChild(c);
    });
  } else {
    state.results = [];
    sketches.forEach((rows, i) => {
      const c = drawSmall([{ lines: toLines(rows, [0, 0], true), colour: colour(i, n) }]);
      c.dataset.points = rows.length;
      box.appendChild(c);
    });
  }
  redrawBoard();
}

// ------------------------------------------------------------------ the API
function setStatus(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function post(path, body) {
  const id = ++state.requestId;
  state.sent += 1;
  $("last-request").textContent = JSON.stringify({ path, body });
  document.body.dataset.sent = state.sent;
  setStatus("thinking…");
  let answer;
  try {
    const response = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
  } catch (e) {
    if (id === state.requestId) setStatus(String(e.message || e), true);
    return null;
  }
  return id === state.requestId ? answer : null;  // a newer request supersedes this one
}

function params() {
  return {
    n: Math.min(16, Math.max(1, parseInt($("count").value, 10) || 8)),
    temperature: parseFloat($("temperature").value),
    seed: Math.max(0, parseInt($("seed").value, 10) || 0),
  };
}

async function refresh() {
  if (state.mode === "sample") {
    const a = await post("/api/sample", params());
    if (a) { showResults(a.sketches, false); setStatus(`${a.n} sketches in ${a.ms} ms (seed ${a.seed})`); }
    return;
  }
  const rows = toStroke3(state.strokes);
  if (!rows.length) { $("endings").replaceChildren(); state.results = []; redrawBoard(); setStatus("draw something"); return; }
  const limit = state.info ? state.info.max_seq_len : Infinity;
  if (rows.length > limit) { setStatus(`${rows.length} points: this model takes at most ${limit}; undo or clear`, true); return; }
  if (state.mode === "encode") {
    const a = await post("/api/reconstruct", { strokes: rows, ...params() });
    if (a) { showResults(a.sketches, false); setStatus(`${a.n} reinterpretations in ${a.ms} ms (seed ${a.seed})`); }
    return;
  }
  const body = { strokes: rows, ...params() };
  if (state.info && state.info.conditional) body.z_mode = $("z-mode").value;
  const a = await post("/api/complete", body);
  if (a) { showResults(a.endings, true); setStatus(`${a.n} endings in ${a.ms} ms (seed ${a.seed}, ${rows.length} points drawn)`); }
}

// ------------------------------------------------------------------ input
board.addEventListener("pointerdown", (e) => {
  if (state.mode === "sample" || e.button > 0) return;
  board.setPointerCapture(e.pointerId);
  state.current = [toData(e)];
  state.strokes.push(state.current);
  redrawBoard();
});

board.addEventListener("pointermove", (e) => {
  if (!state.current) return;
  const p = toData(e), q = state.current[state.current.length - 1];
  if (Math.hypot(p[0] - q[0], p[1] - q[1]) >= MIN_STEP) { state.current.push(p); redrawBoard(); }
});

function endStroke(e) {
  if (!state.current) return;
  const p = toData(e), q = state.current[state.current.length - 1];
  if (Math.hypot(p[0] - q[0], p[1] - q[1]) > 0.5) state.current.push(p);
  state.current = null;
  refresh();
}
board.addEventListener("pointerup", endStroke);
board.addEventListener("pointercancel", endStroke);

$("undo").addEventListener("click", () => { state.strokes.pop(); refresh(); });
$("clear").addEventListener("click", () => { state.strokes = []; refresh(); });
$("again").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 1e9); refresh(); });
$("temperature").addEventListener("input", () => { $("temperature-value").textContent = (+$("temperature").value).toFixed(2); });
for (const id of ["temperature", "count", "z-mode", "seed"]) $(id).addEventListener("change", refresh);

const TITLES = { finish: "finish my drawing", sample: "sketches from nothing", encode: "draw a sketch, see it redrawn" };
for (const b of document.querySelectorAll("#modes button")) {
  b.addEventListener("click", () => {
    state.mode = b.dataset.mode;
    document.querySelectorAll("#modes button").forEach((x) => x.classList.toggle("active", x === b));
    document.body.className = state.mode;
    $("mode-title").textContent = TITLES[state.mode];
    $("z-mode-label").hidden = !(state.mode === "finish" && state.info && state.info.conditional);
    refresh();
  });
}

// ------------------------------------------------------------------ start
$("seed").value = Math.floor(Math.random() * 1e9);
fetch("/api/info").then((r) => r.json()).then((info) => {
  state.info = info;
  const kind = info.conditional ? "conditional (VAE)" : "decoder-only";
  $("run-info").textContent = `serving ${info.run_dir || "a model"} at step ${info.step} — ${info.cell} decoder, ${kind}, N_max ${info.max_seq_len}`;
  $("mode-encode").hidden = !info.conditional;
  $("z-mode-label").hidden = !info.conditional;
  document.body.dataset.ready = "1";
  setStatus("draw something: after each stroke the model proposes endings");
});
redrawBoard();
