/* Plots on <canvas>, no libraries: line plots over steps (with a cursor, and a click that
   picks a step) and histograms. Values that are not finite numbers leave gaps. */
"use strict";

const Plots = (() => {
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                   "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
  const MARGIN = { left: 58, right: 22, top: 24, bottom: 30 };
  const LEGEND_ROW = 16;  // the legend's own row under the title, when it does not fit beside it
  const TITLE_FONT = "600 12px system-ui, sans-serif";
  const LEGEND_FONT = "11px system-ui, sans-serif";

  function prepare(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 480;
    const height = canvas.clientHeight || 220;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, width, height);
    return { ctx, width, height };
  }

  function niceTicks(low, high, count) {
    if (!(high > low)) { return [low]; }
    const raw = (high - low) / Math.max(count, 1);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) {
      ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    }
    return ticks;
  }

  function label(value) {
    if (value === 0) { return "0"; }
    const magnitude = Math.abs(value);
    if (magnitude >= 1e5 || magnitude < 1e-3) { return value.toExponential(1); }
    return Number(value.toPrecision(4)).toString();
  }

  function range(seriesList) {
    let low = Infinity, high = -Infinity;
    for (const series of seriesList) {
      for (const v of series.values) {
        if (Number.isFinite(v)) { if (v < low) { low = v; } if (v > high) { high = v; } }
      }
    }
    if (low === Infinity) { return [0, 1]; }
    if (low === high) { return [low - 1, high + 1]; }
    const pad = (high - low) * 0.05;
    return [low - pad, high + pad];
  }

  function axes(ctx, box, xTicks, yTicks, toX, toY, title) {
    ctx.strokeStyle = "#d9dde5";
    ctx.fillStyle = "#5c6577";
    ctx.lineWidth = 1;
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of yTicks) {
      const y = Math.round(toY(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(box.left, y); ctx.lineTo(box.right, y); ctx.stroke();
      ctx.fillText(label(t), box.left - 6, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of xTicks) {
      ctx.fillText(label(t), toX(t), box.bottom + 6);
    }
    ctx.strokeStyle = "#9aa3b2";
    ctx.strokeRect(box.left + 0.5, box.top + 0.5, box.right - box.left, box.bottom - box.top);
    if (title) {
      ctx.fillStyle = "#1d2330";
      ctx.textAlign = "left";
      ctx.font = TITLE_FONT;
      ctx.fillText(title, box.left, 5);
    }
  }

  /* A line plot of one or more series over steps 0..n-1. */
  function line(canvas, options) {
    const state = { cursor: options.cursor ?? null };
    const seriesList = options.series;
    const count = Math.max(1, ...seriesList.map((s) => s.values.length));
    let geometry = null;

    function draw() {
      const { ctx, width, height } = prepare(canvas);
      const names = seriesList.length > 1 || options.legend ? seriesList.map((s) => s.name) : [];
      const legend = placeLegend(ctx, names, options.title, MARGIN.left, width - MARGIN.right);
      const box = { left: MARGIN.left, right: width - MARGIN.right,
                    top: MARGIN.top + (legend.ownRow ? LEGEND_ROW : 0),
                    bottom: height - MARGIN.bottom };
      const [low, high] = range(seriesList);
      const toX = (i) => box.left + (count > 1 ? (i / (count - 1)) : 0.5) * (box.right - box.left);
      const toY = (v) => box.bottom - ((v - low) / (high - low)) * (box.bottom - box.top);
      geometry = { box, count };
      axes(ctx, box, niceTicks(0, count - 1, 6).filter((t) => Number.isInteger(t)),
           niceTicks(low, high, 4), toX, toY, options.title);
      seriesList.forEach((series, k) => {
        ctx.strokeStyle = PALETTE[k % PALETTE.length];
        ctx.lineWidth = 1.6;
        ctx.beginPath();
        let drawing = false;
        series.values.forEach((v, i) => {
          if (!Number.isFinite(v)) { drawing = false; return; }
          const x = toX(i), y = toY(v);
          if (drawing) { ctx.lineTo(x, y); } else { ctx.moveTo(x, y); drawing = true; }
        });
        ctx.stroke();
        if (series.values.length === 1 && Number.isFinite(series.values[0])) {
          ctx.fillStyle = ctx.strokeStyle;
          ctx.fillRect(toX(0) - 2, toY(series.values[0]) - 2, 4, 4);
        }
      });
      drawLegend(ctx, legend);
      if (state.cursor !== null && state.cursor < count) {
        const x = Math.round(toX(state.cursor)) + 0.5;
        ctx.strokeStyle = "rgba(29, 35, 48, 0.55)";
        ctx.lineWidth = 1;
        ctx.setLineDash([4, 3]);
        ctx.beginPath(); ctx.moveTo(x, box.top); ctx.lineTo(x, box.bottom); ctx.stroke();
        ctx.setLineDash([]);
      }
    }

    canvas.addEventListener("click", (event) => {
      if (!geometry || !options.onPick) { return; }
      const rect = canvas.getBoundingClientRect();
      const x = event.clientX - rect.left;
      const { box } = geometry;
      const fraction = Math.min(1, Math.max(0, (x - box.left) / (box.right - box.left)));
      options.onPick(Math.round(fraction * (geometry.count - 1)));
    });
    draw();
    return {
      setCursor(step) { state.cursor = step; draw(); },
      redraw: draw,
    };
  }

  /* Where the series names go: beside the title, right-aligned, when they all fit there;
     otherwise on a row of their own under the title, left-aligned, as many as fit
     (then "…"). Never over the title. */
  function placeLegend(ctx, names, title, left, right) {
    ctx.font = TITLE_FONT;
    const titleEnd = left + (title ? ctx.measureText(title).width : 0);
    ctx.font = LEGEND_FONT;
    const widths = names.map((name) => ctx.measureText(name).width);
    const total = widths.reduce((a, b) => a + b, 0) + 12 * Math.max(0, names.length - 1);
    if (!names.length) { return { items: [], ownRow: false }; }
    if (right - total >= titleEnd + 16) {
      let x = right - total;
      const items = names.map((name, k) => {
        const item = { name, k, x, y: 5 };
        x += widths[k] + 12;
        return item;
      });
      return { items, ownRow: false };
    }
    const items = [];
    const more = ctx.measureText("…").width;
    let x = left;
    for (let k = 0; k < names.length; k++) {
      const last = k === names.length - 1;
      if (x + widths[k] + (last ? 0 : 12 + more) > right) {
        items.push({ name: "…", k: -1, x, y: 5 + LEGEND_ROW });
        break;
      }
      items.push({ name: names[k], k, x, y: 5 + LEGEND_ROW });
      x += widths[k] + 12;
    }
    return { items, ownRow: true };
  }

  function drawLegend(ctx, legend) {
    ctx.font = LEGEND_FONT;
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    for (const item of legend.items) {
      ctx.fillStyle = item.k < 0 ? "#5c6577" : PALETTE[item.k % PALETTE.length];
      ctx.fillText(item.name, item.x, item.y);
    }
  }

  /* A histogram from bin edges (n + 1) and counts (n). */
  function histogram(canvas, options) {
    drawHistogram(canvas, options);
    return { redraw() { drawHistogram(canvas, options); }, setCursor() {} };
  }

  function drawHistogram(canvas, options) {
    const { ctx, width, height } = prepare(canvas);
    const edges = options.edges, counts = options.counts;
    const box = { left: MARGIN.left, right: width - MARGIN.right, top: MARGIN.top,
                  bottom: height - MARGIN.bottom };
    if (!edges || edges.length < 2) {
      ctx.fillStyle = "#5c6577";
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillText(options.empty || "no finite values", box.left, box.top + 20);
      return;
    }
    const low = edges[0], high = edges[edges.length - 1] > low ? edges[edges.length - 1] : low + 1;
    const top = Math.max(1, ...counts);
    const toX = (v) => box.left + ((v - low) / (high - low)) * (box.right - box.left);
    const toY = (c) => box.bottom - (c / top) * (box.bottom - box.top);
    axes(ctx, box, niceTicks(low, high, 6), niceTicks(0, top, 4).filter(Number.isInteger),
         toX, toY, options.title);
    ctx.fillStyle = options.color || PALETTE[0];
    counts.forEach((c, i) => {
      const x0 = toX(edges[i]), x1 = toX(edges[i + 1]);
      const y = toY(c);
      ctx.fillRect(x0 + 0.5, y, Math.max(1, x1 - x0 - 1), box.bottom - y);
    });
  }

  return { line, histogram, PALETTE };
})();
