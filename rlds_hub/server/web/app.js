/* The rlds_hub dataset viewer: a single page over the REST API (/api/v1), routed by the
   URL hash: #/ (datasets), #/d/<name>?<filters> (a dataset), #/d/<name>/e/<split>/<index>
   (an episode). Plain DOM, no framework; every text from the API goes in as text. */
"use strict";

const API = "/api/v1";
const PAGE = 50;
const MAX_SERIES = 10;
const view = document.getElementById("view");
const errorBox = document.getElementById("error");
const crumbs = document.getElementById("crumbs");
const search = document.getElementById("search");
let renderToken = 0;
let currentPlots = [];  // the plots on the page, redrawn when the window is resized

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) { continue; }
    if (key.startsWith("on")) { node.addEventListener(key.slice(2), value); }
    else if (key === "class") { node.className = value; }
    else { node.setAttribute(key, value === true ? "" : value); }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) { continue; }
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function enc(text) { return encodeURIComponent(text); }

function show(...nodes) {
  view.replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined));
}

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") { continue; }
    for (const item of Array.isArray(value) ? value : [value]) { query.append(key, item); }
  }
  const url = API + path + (query.toString() ? "?" + query : "");
  const response = await fetch(url);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new Error(message);
  }
  return body;
}

/* API numbers may be "NaN", "Infinity" or "-Infinity" (JSON has no such numbers). */
function num(value) { return typeof value === "string" ? Number(value) : value; }

function fmt(value, digits = 4) {
  if (value === null || value === undefined) { return "–"; }
  const v = num(value);
  if (typeof v !== "number") { return String(value); }
  if (!Number.isFinite(v)) { return String(value); }
  if (Number.isInteger(v)) { return v.toLocaleString("en-US"); }
  const magnitude = Math.abs(v);
  return magnitude !== 0 && (magnitude >= 1e6 || magnitude < 1e-3)
    ? v.toExponential(digits - 1) : Number(v.toPrecision(digits)).toString();
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function showError(error) {
  errorBox.hidden = false;
  errorBox.textContent = error instanceof Error ? error.message : String(error);
}

function setCrumbs(...parts) {
  crumbs.replaceChildren(...parts.flatMap((part, i) => (i ? [" / ", part] : [part])));
}

function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent),
           params: new URLSearchParams(query || "") };
}

async function route() {
  const token = ++renderToken;
  errorBox.hidden = true;
  const { parts, params } = parseHash();
  try {
    if (parts[0] === "d" && parts.length >= 5 && parts[2] === "e") {
      await renderEpisode(parts[1], parts[3], Number(parts[4]), token);
    } else if (parts[0] === "d" && parts.length >= 2) {
      await renderDataset(parts[1], params, token);
    } else {
      await renderList(params, token);
    }
  } catch (error) {
    if (token === renderToken) { showError(error); }
  }
}

/* ---- the datasets list ------------------------------------------------------------------ */

async function renderList(params, token) {
  const q = params.get("q") || "";
  const offset = Number(params.get("offset") || 0);
  search.value = q;
  setCrumbs("datasets");
  const page = await api("/datasets", { q, limit: PAGE, offset });
  if (token !== renderToken) { return; }
  const rows = page.items.map((d) => el("tr", {
    class: "clickable", "data-dataset": d.name,
    onclick: () => { location.hash = "#/d/" + enc(d.name); },
  },
    el("td", {}, el("a", { href: "#/d/" + enc(d.name) }, d.name)),
    el("td", { class: d.status === "ok" ? "" : "status-" + d.status }, d.status),
    el("td", { class: "num" }, fmt(d.num_episodes)),
    el("td", { class: "num" }, fmt(d.num_steps)),
    el("td", { class: "num" }, bytes(d.size_bytes)),
    el("td", {}, d.env_name || "–"),
    el("td", {}, d.policy || "–"),
    el("td", {}, Object.keys(d.splits).join(", ")),
  ));
  show(
    el("h1", {}, q ? `datasets matching “${q}”` : "datasets"),
    el("table", { id: "datasets" },
      el("thead", {}, el("tr", {}, ["name", "status", "episodes", "steps", "size", "env",
        "policy", "splits"].map((h, i) => el("th", { class: i >= 2 && i <= 4 ? "num" : "" }, h)))),
      el("tbody", {}, rows)),
    pager(page, (next) => { location.hash = "#/?" + new URLSearchParams({ q, offset: next }); }),
  );
  if (!page.items.length) { view.append(el("p", { class: "muted" }, "no datasets found")); }
}

function pager(page, go) {
  const last = Math.min(page.offset + page.items.length, page.total);
  return el("div", { class: "pager" },
    el("button", { disabled: page.offset <= 0,
                   onclick: () => go(Math.max(0, page.offset - page.limit)) }, "‹ previous"),
    el("span", { class: "page-info" },
       page.total ? `${page.offset + 1}–${last} of ${page.total.toLocaleString("en-US")}`
                  : "0 of 0"),
    el("button", { disabled: last >= page.total,
                   onclick: () => go(page.offset + page.limit) }, "next ›"));
}

document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  location.hash = "#/?" + new URLSearchParams({ q: search.value.trim() });
});
let searchTimer = null;
search.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    location.hash = "#/?" + new URLSearchParams({ q: search.value.trim() });
  }, 250);
});

/* ---- a dataset --------------------------------------------------------------------------- */

function featureTree(nodes) {
  return el("ul", { class: "tree" }, nodes.map((node) => el("li", {},
    node.children
      ? [el("span", {}, node.name), featureTree(node.children)]
      : [el("span", {}, node.name),
         el("span", { class: "leaf-type" },
            `${node.dtype} [${node.shape.join(", ")}] ${node.encoding}`)])));
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined && v !== null)
    .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function short(value) {
  if (Array.isArray(value)) {
    const flat = value.flat(Infinity);
    return "[" + flat.slice(0, 4).map((v) => fmt(v, 3)).join(" ") + (flat.length > 4 ? " …" : "")
      + "]";
  }
  return fmt(value);
}

function statisticsTable(stats) {
  const features = Object.entries((stats && stats.features) || {});
  if (!features.length) { return el("p", { class: "muted" }, "no feature statistics"); }
  return el("table", { id: "statistics" },
    el("thead", {}, el("tr", {}, ["feature", "shape", "mean", "std", "min", "max", "non-finite"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, features.map(([name, f]) => el("tr", {},
      el("td", {}, name + (f.last_step_excluded ? " *" : "")),
      el("td", {}, "[" + f.shape.join(", ") + "]"),
      el("td", {}, short(f.mean)), el("td", {}, short(f.std)),
      el("td", {}, short(f.min)), el("td", {}, short(f.max)),
      el("td", {}, f.nan_count || f.inf_count ? `${f.nan_count} nan, ${f.inf_count} inf` : "")))));
}

const FILTERS = ["split", "min_return", "max_return", "min_length", "max_length", "terminated"];

async function renderDataset(name, params, token) {
  setCrumbs(el("a", { href: "#/" }, "datasets"), name);
  const dataset = await api("/datasets/" + enc(name));
  if (token !== renderToken) { return; }
  const splits = Object.keys(dataset.splits);
  const chosenSplit = params.get("split") || (splits.includes("train") ? "train" : splits[0]);
  const stats = dataset.statistics[chosenSplit];
  const returnsCanvas = el("canvas", { class: "plot", id: "returns-histogram" });
  const lengthsCanvas = el("canvas", { class: "plot", id: "lengths-histogram" });
  const provenance = dataset.provenance || {};
  show(
    el("h1", {}, dataset.name, " ",
       dataset.status !== "ok" ? el("span", { class: "status-" + dataset.status },
                                    `(${dataset.status})`) : null),
    dataset.error ? el("div", { class: "error" }, dataset.error) : null,
    el("div", { class: "grid" },
      el("section", { class: "panel" }, el("h2", {}, "dataset"), facts([
        ["path", dataset.path], ["TFDS", `${dataset.tfds_name} ${dataset.version}`],
        ["format", dataset.file_format], ["layout", dataset.layout],
        ["episodes", fmt(dataset.num_episodes)], ["steps", fmt(dataset.num_steps)],
        ["transitions", fmt(dataset.num_transitions)], ["size", bytes(dataset.size_bytes)],
        ["env", provenance.env_name], ["policy", provenance.policy],
        ["created", provenance.created], ["indexed", dataset.indexed_at],
        ["statistics", provenance.statistics], ["checksums", provenance.checksums],
      ])),
      el("section", { class: "panel" }, el("h2", {}, "splits"), el("table", {},
        el("thead", {}, el("tr", {}, ["split", "episodes", "steps", "terminated", "shards",
          "size"].map((h, i) => el("th", { class: i ? "num" : "" }, h)))),
        el("tbody", {}, Object.entries(dataset.splits).map(([s, info]) => el("tr", {},
          el("td", {}, s), el("td", { class: "num" }, fmt(info.episodes)),
          el("td", { class: "num" }, fmt(info.steps)),
          el("td", { class: "num" }, fmt(info.terminated)),
          el("td", { class: "num" }, fmt(info.shards)),
          el("td", { class: "num" }, info.bytes != null ? bytes(info.bytes) : "–")))))),
      el("section", { class: "panel" }, el("h2", {}, "features"),
        el("h3", { class: "muted" }, "steps"), featureTree(dataset.features.steps),
        dataset.features.episode.length ? [el("h3", { class: "muted" }, "episode"),
                                           featureTree(dataset.features.episode)] : null),
    ),
    el("h2", {}, `split ${chosenSplit}: returns and lengths`),
    el("div", { class: "plots" },
      el("div", { class: "panel" }, returnsCanvas), el("div", { class: "panel" }, lengthsCanvas)),
    el("h2", {}, "statistics"),
    el("div", { class: "panel" }, statisticsTable(stats),
       el("p", { class: "muted" }, "* the zero-filled last step of each episode is excluded")),
    el("h2", {}, "episodes"),
    await episodeTable(dataset, params, token),
  );
  currentPlots = [Plots.histogram(returnsCanvas, {
    title: "episode return", edges: stats && stats.returns && stats.returns.histogram.edges,
    counts: stats && stats.returns && stats.returns.histogram.counts,
    empty: stats ? "no finite returns" : "no statistics for this split" }),
  Plots.histogram(lengthsCanvas, {
    title: "episode length (steps)", color: Plots.PALETTE[2],
    edges: stats && stats.lengths && stats.lengths.histogram.edges,
    counts: stats && stats.lengths && stats.lengths.histogram.counts,
    empty: "no statistics for this split" })];
}

async function episodeTable(dataset, params, token) {
  const name = dataset.name;
  const query = {};
  for (const key of FILTERS) { if (params.get(key)) { query[key] = params.get(key); } }
  const meta = params.getAll("meta");
  const orderBy = params.get("order_by") || "index";
  const offset = Number(params.get("offset") || 0);
  const page = await api(`/datasets/${enc(name)}/episodes`,
                         { ...query, meta, order_by: orderBy, limit: PAGE, offset });
  const go = (changes) => {
    const next = new URLSearchParams(params);
    for (const [key, value] of Object.entries(changes)) {
      next.delete(key);
      for (const item of Array.isArray(value) ? value : [value]) {
        if (item !== "" && item !== null && item !== undefined) { next.append(key, item); }
      }
    }
    location.hash = "#/d/" + enc(name) + "?" + next;
  };
  const input = (key, label, type = "number") => el("label", {}, label,
    el("input", { name: key, type, step: "any", value: params.get(key) || "" }));
  const form = el("form", { class: "filters", id: "episode-filters", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const changes = { offset: "" };
    for (const key of FILTERS) { changes[key] = data.get(key) || ""; }
    changes.meta = String(data.get("meta") || "").split(";").map((s) => s.trim())
      .filter(Boolean);
    go(changes);
  } },
    el("label", {}, "split", el("select", { name: "split" },
      el("option", { value: "" }, "all"),
      Object.keys(dataset.splits).map((s) => el("option", { value: s,
                                                           selected: params.get("split") === s }, s)))),
    input("min_return", "min return"), input("max_return", "max return"),
    input("min_length", "min length"), input("max_length", "max length"),
    el("label", {}, "terminated", el("select", { name: "terminated" },
      el("option", { value: "" }, "any"),
      el("option", { value: "true", selected: params.get("terminated") === "true" }, "yes"),
      el("option", { value: "false", selected: params.get("terminated") === "false" }, "no"))),
    Object.keys(dataset.episode_fields).length
      ? el("label", {}, "metadata (" + Object.keys(dataset.episode_fields).join(", ") + ")",
           el("input", { name: "meta", class: "wide", value: meta.join("; "),
                         placeholder: "success=true; episode_id>=3" }))
      : null,
    el("button", { type: "submit" }, "filter"),
    el("button", { type: "button", onclick: () => {
      location.hash = "#/d/" + enc(name); } }, "clear"));
  const sortable = (label, key) => {
    const active = orderBy.replace("-", "") === key;
    const arrow = active ? (orderBy.startsWith("-") ? " ▼" : " ▲") : "";
    return el("th", { class: "sortable num", "data-sort": key, onclick: () => go({
      order_by: active && !orderBy.startsWith("-") ? "-" + key : key, offset: "" }) },
      label + arrow);
  };
  const metaKeys = Object.keys(dataset.episode_fields);
  const rows = page.items.map((e) => el("tr", {
    class: "clickable", "data-episode": `${e.split}/${e.index}`,
    onclick: () => { location.hash = `#/d/${enc(name)}/e/${enc(e.split)}/${e.index}`; },
  },
    el("td", {}, e.split), el("td", { class: "num" }, String(e.index)),
    el("td", { class: "num" }, fmt(e.length)), el("td", { class: "num" }, fmt(e.return)),
    el("td", {}, e.is_terminal ? "terminated" : "truncated"),
    metaKeys.map((k) => el("td", {}, e.metadata && k in e.metadata ? fmt(e.metadata[k]) : "–"))));
  return el("div", { class: "panel" }, form,
    el("table", { id: "episodes" },
      el("thead", {}, el("tr", {}, el("th", {}, "split"), sortable("episode", "index"),
        sortable("length", "length"), sortable("return", "return"), el("th", {}, "end"),
        metaKeys.map((k) => el("th", {}, k)))),
      el("tbody", {}, rows)),
    pager(page, (next) => go({ offset: next })));
}

/* ---- an episode ------------------------------------------------------------------------- */

async function loadSteps(name, split, index, length) {
  const fields = {};
  for (let start = 0; start < length || start === 0; ) {
    const slice = await api(`/datasets/${enc(name)}/episodes/${index}/steps`,
                            { split, start, stop: Math.min(length, start + 1000) });
    for (const [key, values] of Object.entries(slice.fields)) {
      fields[key] = (fields[key] || []).concat(values);
    }
    if (slice.stop >= length || slice.stop <= start) { return { fields, slice }; }
    start = slice.stop;
  }
  return { fields, slice: null };
}

function seriesOf(values, shape) {
  const columns = shape.reduce((a, b) => a * b, 1);
  if (!shape.length) { return [{ name: "", values: values.map(num) }]; }
  const flat = values.map((v) => (Array.isArray(v) ? v.flat(Infinity) : [v]));
  const out = [];
  for (let c = 0; c < Math.min(columns, MAX_SERIES); c++) {
    out.push({ name: `[${c}]`, values: flat.map((row) => num(row[c])) });
  }
  return out;
}

async function renderEpisode(name, split, index, token) {
  setCrumbs(el("a", { href: "#/" }, "datasets"), el("a", { href: "#/d/" + enc(name) }, name),
            `${split} episode ${index}`);
  const episode = await api(`/datasets/${enc(name)}/episodes/${index}`, { split });
  const { fields, slice } = await loadSteps(name, split, index, episode.length);
  if (token !== renderToken) { return; }
  const dtypes = slice ? slice.dtypes : {};
  const shapes = slice ? slice.shapes : {};
  if (episode.layout === "rlds" && episode.length > 0) {
    // The last step's action, reward, discount and step metadata are zero-filled filler.
    for (const key of Object.keys(fields)) {
      if (!key.startsWith("observation") && !/^is_(first|last|terminal)$/.test(key)) {
        fields[key] = fields[key].slice(0, -1).concat([null]);
      }
    }
  }
  const plotted = Object.keys(fields).filter((key) => {
    const dtype = dtypes[key];
    return dtype && dtype !== "string" && dtype !== "bool" && !/^(is_first|is_last|is_terminal)$/
      .test(key);
  }).sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  const plots = [];
  currentPlots = plots;
  let step = 0;
  const readout = el("span", { id: "step-readout" });
  const scrubber = el("input", { type: "range", id: "scrubber", min: 0,
                                 max: Math.max(0, episode.length - 1), value: 0 });
  const fieldSelect = el("select", { id: "frame-field" },
    episode.image_fields.map((f) => el("option", { value: f }, f)));
  const frame = el("img", { id: "frame", alt: "image observation" });
  let playing = null;
  const play = el("button", { id: "play", onclick: () => {
    if (playing) { clearInterval(playing); playing = null; play.textContent = "play"; return; }
    play.textContent = "pause";
    playing = setInterval(() => {
      if (token !== renderToken) { clearInterval(playing); return; }
      setStep(step + 1 >= episode.length ? 0 : step + 1);
    }, 100);
  } }, "play");

  function setStep(next) {
    step = Math.max(0, Math.min(episode.length - 1, next));
    scrubber.value = String(step);
    const values = plotted.slice(0, 3).map((key) => `${key} ${short(fields[key][step])}`);
    readout.textContent = `step ${step} / ${episode.length - 1}` +
      (values.length ? " · " + values.join(" · ") : "");
    for (const plot of plots) { plot.setCursor(step); }
    if (episode.image_fields.length) {
      frame.src = `${API}/datasets/${enc(name)}/episodes/${index}/frames/${step}?` +
        new URLSearchParams({ split, field: fieldSelect.value });
      frame.dataset.step = String(step);
    }
  }
  scrubber.addEventListener("input", () => setStep(Number(scrubber.value)));
  fieldSelect.addEventListener("change", () => setStep(step));
  document.onkeydown = (event) => {
    if (token !== renderToken || event.target.tagName === "INPUT") { return; }
    if (event.key === "ArrowRight") { setStep(step + 1); }
    if (event.key === "ArrowLeft") { setStep(step - 1); }
  };
  const canvases = plotted.map((key) => el("canvas", { class: "plot", "data-field": key }));
  show(
    el("h1", {}, `${name} · ${split} episode ${index}`),
    el("div", { class: "grid" },
      el("section", { class: "panel" }, el("h2", {}, "episode"), facts([
        ["steps", fmt(episode.length)], ["transitions", fmt(episode.num_transitions)],
        ["return", fmt(episode.return)],
        ["end", episode.is_terminal ? "terminated" : "truncated"],
        ...Object.entries(episode.metadata || {}).map(([k, v]) => [k, fmt(v)]),
      ])),
      el("section", { class: "panel frame-box" }, el("h2", {}, "frames"),
        episode.image_fields.length ? [fieldSelect, frame] :
          el("p", { class: "muted" }, "this dataset has no image observations"),
        el("div", { class: "scrubber" }, play, scrubber), readout)),
    el("h2", {}, "over time (click a plot to pick a step)"),
    el("div", { class: "plots" }, canvases.map((c) => el("div", { class: "panel" }, c))),
    plotted.length ? null : el("p", { class: "muted" }, "no numeric step fields to plot"),
  );
  canvases.forEach((canvas, i) => {
    const key = plotted[i];
    const shape = shapes[key] || [];
    const size = shape.reduce((a, b) => a * b, 1);
    plots.push(Plots.line(canvas, {
      title: key + (size > MAX_SERIES ? ` (first ${MAX_SERIES} of ${size})` : ""),
      series: seriesOf(fields[key], shape), cursor: 0, onPick: setStep }));
  });
  setStep(0);
}

function order(key) {
  if (key === "reward") { return 0; }
  if (key.startsWith("action")) { return 1; }
  if (key.startsWith("observation")) { return 2; }
  return 3;
}

let resizeTimer = null;
window.addEventListener("hashchange", route);
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { for (const plot of currentPlots) { plot.redraw(); } }, 150);
});
route();
