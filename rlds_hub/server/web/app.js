/* The rlds_hub dataset viewer: a single page over the REST API (/api/v1), routed by the
   URL hash: #/ (datasets), #/d/<name>?<filters> (a dataset), #/d/<name>/e/<split>/<index>
   (an episode). Plain DOM, no framework; every text from the API goes in as text.
   This file: helpers, routing, search; the pages are in datasets.js and episode.js, the
   plots in plots.js. */
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
    if (token === renderToken) { clearPage(); showError(error); }
  }
}

/* An error replaces the page: nothing of the page before it stays below the banner. */
function clearPage() {
  view.replaceChildren();
  currentPlots = [];
  document.onkeydown = null;
}

/* ---- shared pieces -------------------------------------------------------------------- */

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

/* A wide table scrolls sideways inside its panel instead of widening the page. */
function scrolling(table) { return el("div", { class: "table-scroll" }, table); }

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


let resizeTimer = null;
window.addEventListener("hashchange", route);
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { for (const plot of currentPlots) { plot.redraw(); } }, 150);
});
document.addEventListener("DOMContentLoaded", route);
