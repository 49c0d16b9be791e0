// candlecast dashboard: plain JS, no build step, no framework.
// Reads the service's JSON endpoints through RELATIVE urls (so the page also works
// under a path prefix) and draws them with the vendored TradingView Lightweight Charts v5.

const LWC = window.LightweightCharts; // static/vendor/lightweight-charts.standalone.production.js
// How often GET status is asked whether a new hour arrived; ?poll=SECONDS overrides it (tests).
const POLL_MS = 1000 * Math.max(1, Number(new URLSearchParams(location.search).get("poll")) || 30);
const AGE_MS = 15_000; // how often the "x min ago" texts are refreshed
const HOURS = 168; // the chart's window: 7 days of hourly candles
const HOUR_S = 3600;
const COLORS = { lasso: "#2962ff", cnn: "#e07b00", naive: "#8d8d99" };
const PALETTE = ["#9c27b0", "#00897b", "#d81b60", "#795548", "#7cb342"];
const UP = "#089981";
const DOWN = "#f23645";

const state = {
  symbol: null,
  symbols: [],
  models: [], // the symbol's rows of GET models
  enabled: readEnabled(), // model -> false when switched off (kept in localStorage)
  status: null,
  signature: null, // freshness.as_of + champions: a change means "refetch everything"
  candles: [],
  forecasts: [],
  predictions: new Map(), // model -> GET predict body, or {error}
  perf: { "24h": null, "7d": null },
  skewMs: 0, // the server's clock minus ours (from status.now), for the "ago" texts
  checkedAt: null, // when the status was last read
  gen: 0, // bumped by each full load: an older load's answers are dropped
  needsFull: true, // the last full load had failures: the next poll retries it
  polling: false, // a poll is under way: the timer's next tick skips
};

// ---------------------------------------------------------------- helpers

/** document.createElement with attributes and children (strings are text, never HTML). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value !== null && value !== undefined && value !== false) el.setAttribute(key, value === true ? "" : value);
  }
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}
const $ = (id) => document.getElementById(id);
const isNum = (v) => typeof v === "number" && Number.isFinite(v);

const usdFormat = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });
const plainFormat = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const timeFormat = new Intl.DateTimeFormat("en-GB", { timeZone: "UTC", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const usd = (v) => (isNum(v) ? usdFormat.format(v) : "—");
const plain = (v) => (isNum(v) ? plainFormat.format(v) : "—");
const signedUsd = (v) => (isNum(v) ? (v > 0 ? "+" : v < 0 ? "−" : "") + usdFormat.format(Math.abs(v)) : "—");
const signedPct = (v) => (isNum(v) ? `${v > 0 ? "+" : v < 0 ? "−" : ""}${Math.abs(v).toFixed(Math.abs(v) < 0.1 ? 3 : 2)} %` : "—");
const share = (v, digits = 1) => (isNum(v) ? `${(v * 100).toFixed(digits)} %` : "—");
const fixed = (v, digits) => (isNum(v) ? v.toFixed(digits) : "—");

/** Milliseconds of an ISO-8601 time; one without an offset is taken as UTC (the service's convention). */
function parseTime(iso) {
  if (typeof iso !== "string") return NaN;
  return Date.parse(/(Z|[+-]\d\d:?\d\d)$/i.test(iso) ? iso : `${iso}Z`);
}
const seconds = (iso) => Math.round(parseTime(iso) / 1000); // lightweight-charts wants UTC unix seconds
const utc = (iso) => (Number.isNaN(parseTime(iso)) ? "—" : `${timeFormat.format(parseTime(iso))} UTC`);

function duration(s) {
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  const hours = Math.floor(s / 3600), minutes = Math.floor((s % 3600) / 60);
  if (s < 2 * 86400) return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  return `${Math.floor(s / 86400)} d ${hours % 24} h`;
}
/** "12 min ago" or "in 3 h 5 min", measured on the server's clock. */
function ago(iso) {
  const s = (parseTime(iso) - (Date.now() + state.skewMs)) / 1000;
  if (Number.isNaN(s)) return "";
  if (Math.abs(s) < 5) return "just now";
  return s < 0 ? `${duration(-s)} ago` : `in ${duration(s)}`;
}
/** A <time> showing the UTC time and how long ago; refreshAges() keeps the "ago" current. */
function when(iso, field) {
  if (!iso) return h("span", { "data-field": field, "data-value": "" }, "—");
  return h("time", { datetime: iso, title: iso, "data-field": field, "data-value": iso },
    utc(iso), h("span", { class: "muted" }, " · ", h("span", { "data-ago": iso }, ago(iso))));
}
function refreshAges() {
  for (const el of document.querySelectorAll("[data-ago]")) el.textContent = ago(el.dataset.ago);
}

const badge = (text, kind = "") => h("span", { class: `badge ${kind}` }, text);
const swatch = (model) => h("span", { class: "swatch", style: `color:${colorOf(model)}` });
function colorOf(model) {
  if (COLORS[model]) return COLORS[model];
  const known = state.models.map((m) => m.model).filter((m) => !COLORS[m]);
  return PALETTE[Math.max(0, known.indexOf(model)) % PALETTE.length];
}
function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

function readEnabled() {
  try { return JSON.parse(localStorage.getItem("candlecast.enabled") ?? "{}") || {}; } catch { return {}; } // blocked or garbled: all on
}
const isEnabled = (model) => state.enabled[model] !== false;

// ---------------------------------------------------------------- fetching and notices

class ApiError extends Error {
  constructor(endpoint, status, code, message) { super(message); Object.assign(this, { endpoint, status, code }); }
}

/** GET a JSON endpoint; a failure is an ApiError carrying the server's `error` and `message`. */
async function api(path, params) {
  const query = new URLSearchParams(params ?? {}).toString();
  const endpoint = query ? `${path}?${query}` : path;
  const response = await fetch(endpoint, { headers: { Accept: "application/json" }, cache: "no-store" }).catch((err) => {
    throw new ApiError(endpoint, 0, "network_error", `the service did not answer (${err.message})`);
  });
  const body = await response.json().catch(() => null); // not JSON: reported with the HTTP status
  if (!response.ok || body === null || typeof body !== "object") {
    const fallback = `HTTP ${response.status} ${response.statusText}`.trim();
    throw new ApiError(endpoint, response.status, body?.error ?? "bad_response", body?.message ?? fallback);
  }
  return body;
}

const notices = new Map(); // key -> content of one line of #notice
const INFO = new Set(["features", "symbol"]); // expected states; the other keys are failures

function notice(key, content) {
  if (content) notices.set(key, content);
  else notices.delete(key);
  const el = $("notice");
  el.replaceChildren(...[...notices].map(([k, c]) => h("p", { class: INFO.has(k) ? "info" : "error", "data-key": k }, c)));
  el.classList.toggle("has-error", [...notices.keys()].some((k) => !INFO.has(k)));
  el.hidden = notices.size === 0;
}
const errorText = (err) => [h("span", { class: "kind" }, `GET ${err.endpoint} failed`),
  ` (${err.status || "no answer"} ${err.code}): ${err.message}`];

/** The endpoint's body, or null with its failure shown in #notice under `key`. */
async function attempt(key, promise) {
  try {
    const body = await promise;
    notice(key, null);
    return body;
  } catch (err) {
    if (!(err instanceof ApiError)) throw err; // a bug: let safely() report it
    notice(key, errorText(err));
    return null;
  }
}

/** Runs an async step; a bug (not an endpoint failure) is shown and logged once. */
async function safely(step) {
  try {
    await step();
  } catch (err) {
    notice("bug", [h("span", { class: "kind" }, "Dashboard error: "), String(err?.message ?? err)]);
    console.error(err); // unexpected: worth a console error (endpoint failures never get one)
  }
}

// ---------------------------------------------------------------- loading

async function start() {
  initChart();
  $("symbol").addEventListener("change", (e) => safely(() => selectSymbol(e.target.value)));
  await loadSymbols();
  await loadAll();
  setInterval(() => safely(poll), POLL_MS);
  setInterval(refreshAges, AGE_MS);
  document.addEventListener("visibilitychange", () => document.hidden || safely(poll));
}

async function loadSymbols() {
  const body = await attempt("symbols", api("symbols"));
  state.symbols = Array.isArray(body?.symbols) ? body.symbols : [];
  const wanted = new URLSearchParams(location.search).get("symbol");
  if (state.symbols.length && wanted && !state.symbols.includes(wanted)) {
    notice("symbol", `Unknown symbol ${wanted}: showing ${state.symbols[0]}. Served: ${state.symbols.join(", ")}.`);
  }
  state.symbol = state.symbols.includes(wanted) ? wanted
    : state.symbol ?? state.symbols[0] ?? wanted ?? "BTC-USD"; // no list: try anyway
  if (wanted && wanted !== state.symbol && state.symbols.length) setUrlSymbol(state.symbol);
  const choices = state.symbols.length ? state.symbols : [state.symbol];
  $("symbol").replaceChildren(...choices.map((s) => h("option", { value: s, selected: s === state.symbol }, s)));
  document.title = `${state.symbol} · candlecast`;
}

function setUrlSymbol(symbol) {
  const url = new URL(location.href);
  url.searchParams.set("symbol", symbol); // a copied link opens the same symbol
  history.replaceState(null, "", url);
}

async function selectSymbol(symbol) {
  state.symbol = symbol;
  setUrlSymbol(symbol);
  document.title = `${symbol} · candlecast`;
  notice("symbol", null);
  resetChart();
  await loadAll();
}

/** Fetches everything of the symbol and redraws. */
async function loadAll() {
  const gen = ++state.gen;
  const symbol = state.symbol;
  const [status, models, candles, forecasts, perf24, perf7] = await Promise.all([
    attempt("status", api("status", { symbol })),
    attempt("models", api("models")),
    attempt("candles", api("candles", { symbol, hours: HOURS })),
    attempt("forecasts", api("forecasts", { symbol, hours: HOURS })),
    attempt("performance-24h", api("performance", { symbol, window: "24h" })),
    attempt("performance-7d", api("performance", { symbol, window: "7d" })),
  ]);
  if (gen !== state.gen) return; // another symbol was chosen meanwhile
  if (status) applyStatus(status);
  // A failed endpoint keeps its last good answer (same symbol): a blip does not blank the page.
  if (models) state.models = models.models.filter((m) => m.symbol === symbol);
  else if (!state.models.length) state.models = (status?.champions ?? []).map((c) => ({ ...c, symbol }));
  if (candles) state.candles = candles.candles.filter((c) => !Number.isNaN(parseTime(c.time)));
  if (forecasts) state.forecasts = forecasts.forecasts;
  if (perf24) state.perf["24h"] = perf24;
  if (perf7) state.perf["7d"] = perf7;
  await loadPredictions(gen, symbol, status);
  if (gen !== state.gen) return;
  state.needsFull = !(status && models && candles && forecasts && perf24 && perf7);
  renderAll();
  const chartEl = $("chart");
  chartEl.dataset.state = state.candles.length ? "chart" : "empty";
  chartEl.dataset.ready = "1"; // tests wait for this: the first load has been drawn
}

async function loadPredictions(gen, symbol, status) {
  for (const key of notices.keys()) if (key.startsWith("predict:")) notice(key, null);
  state.predictions = new Map();
  const freshness = status?.freshness;
  if (freshness && !freshness.as_of) {
    // No online features: every /predict would answer 503, so it is not asked (the
    // browser logs each failed request to the console).
    const error = { code: "features_unavailable", message: freshness.message ?? "no online features" };
    for (const m of state.models) state.predictions.set(m.model, { error });
    return;
  }
  const answers = await Promise.all(state.models.map((m) => api("predict", { symbol, model: m.model })
    .catch((err) => (err instanceof ApiError ? { error: err } : Promise.reject(err)))));
  if (gen !== state.gen) return;
  state.models.forEach((m, i) => {
    const answer = answers[i];
    state.predictions.set(m.model, answer);
    // features_unavailable is an expected state with its own notice (renderBanners)
    if (answer.error && answer.error.code !== "features_unavailable") notice(`predict:${m.model}`, errorText(answer.error));
  });
}

function applyStatus(status) {
  state.status = status;
  const now = parseTime(status.now);
  if (!Number.isNaN(now)) state.skewMs = now - Date.now();
  state.checkedAt = new Date(Date.now() + state.skewMs).toISOString(); // on the server's clock, like ago()
  state.signature = signatureOf(status);
}
const signatureOf = (status) => [status.freshness?.as_of ?? "",
  ...(status.champions ?? []).map((c) => `${c.model}:${c.model_version}:${c.default}`)].join("|");

/** Every 30 s: a new hour (freshness.as_of) or new champions refetch everything; else only the status. */
async function poll() {
  if (state.polling) return;
  state.polling = true;
  try {
    if (!state.symbols.length) await loadSymbols();
    if (state.needsFull) return await loadAll();
    const gen = state.gen;
    const status = await attempt("status", api("status", { symbol: state.symbol }));
    if (!status || gen !== state.gen) return;
    if (signatureOf(status) !== state.signature) return await loadAll();
    applyStatus(status);
    renderStatus();
    renderBanners();
    renderLastUpdate();
  } finally {
    state.polling = false;
  }
}

// ---------------------------------------------------------------- chart

let chart = null;
let candleSeries = null;
const modelSeries = new Map(); // model -> {past, next, band, markers}
let userMoved = false; // the user zoomed or panned: redraws keep the view

function themeOptions() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    layout: { background: { type: LWC.ColorType.Solid, color: v("--chart-bg") }, textColor: v("--chart-text") },
    grid: { vertLines: { color: v("--chart-grid") }, horzLines: { color: v("--chart-grid") } },
    rightPriceScale: { borderColor: v("--border") },
    timeScale: { borderColor: v("--border") },
  };
}

function initChart() {
  if (!LWC) {
    notice("chart-lib", "The chart library (static/vendor/lightweight-charts.standalone.production.js) did not load.");
    return;
  }
  const el = $("chart");
  chart = LWC.createChart(el, {
    autoSize: true, // follows the container (CSS sets its height)
    layout: { fontFamily: getComputedStyle(document.body).fontFamily, fontSize: 11, attributionLogo: true }, // keep the TradingView logo: the license asks for it
    timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 3 },
    rightPriceScale: { scaleMargins: { top: 0.14, bottom: 0.06 } }, // room for the legend line
    crosshair: { mode: LWC.CrosshairMode.Normal },
    localization: { priceFormatter: (p) => plainFormat.format(p) },
  });
  chart.applyOptions(themeOptions());
  candleSeries = chart.addSeries(LWC.CandlestickSeries, {
    upColor: UP, downColor: DOWN, wickUpColor: UP, wickDownColor: DOWN, borderVisible: false, title: "",
  });
  chart.subscribeCrosshairMove(renderLegend);
  // Only a person's gesture counts as "moved" (setData and fitContent also move the range).
  for (const type of ["pointerdown", "wheel", "touchstart"]) el.addEventListener(type, () => { userMoved = true; }, { passive: true });
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => chart.applyOptions(themeOptions()));
}

function seriesFor(model) {
  if (modelSeries.has(model)) return modelSeries.get(model);
  const color = colorOf(model);
  const line = (options) => chart.addSeries(LWC.LineSeries, {
    color, lineWidth: 1, priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false, ...options,
  });
  const s = {
    past: line({ color: alpha(color, 0.9), crosshairMarkerVisible: true }),
    next: line({ lineWidth: 2, lineStyle: LWC.LineStyle.Dashed, lastValueVisible: true, title: model }),
    // interval_80 / interval_95 as one box-plot-like candle at the target: the body
    // spans the 80 % interval, the wicks the 95 % one
    band: chart.addSeries(LWC.CandlestickSeries, {
      upColor: alpha(color, 0.22), downColor: alpha(color, 0.22), borderUpColor: color, borderDownColor: color,
      wickUpColor: color, wickDownColor: color, priceLineVisible: false, lastValueVisible: false,
    }),
  };
  s.markers = LWC.createSeriesMarkers(s.next, []);
  modelSeries.set(model, s);
  return s;
}
const allSeries = (s) => [s.past, s.next, s.band];
function dropSeries(model) {
  allSeries(modelSeries.get(model)).forEach((x) => chart.removeSeries(x));
  modelSeries.delete(model);
}

/** Sorted by time, one point per time (the last wins): lightweight-charts throws otherwise. */
function byTime(points) {
  const map = new Map();
  for (const p of points) if (Number.isFinite(p.time)) map.set(p.time, p);
  return [...map.values()].sort((a, b) => a.time - b.time);
}
const isInterval = (iv) => Array.isArray(iv) && iv.length === 2 && isNum(iv[0]) && isNum(iv[1]);

function drawChart() {
  const placeholder = $("chart-placeholder");
  if (!chart) {
    placeholder.textContent = "The chart library did not load.";
    placeholder.hidden = false;
    return;
  }
  const bars = byTime(state.candles.map((c) => ({ time: seconds(c.time), open: c.open, high: c.high, low: c.low, close: c.close })));
  candleSeries.setData(bars);
  const last = bars.at(-1);
  const names = new Set(state.models.map((m) => m.model));
  for (const model of modelSeries.keys()) if (!names.has(model)) dropSeries(model);
  for (const m of state.models) {
    const s = seriesFor(m.model);
    // A forecast targeting T predicts the close of the candle that opens at T - 1 h:
    // it is drawn on that candle (candles are plotted at their open time).
    const past = state.forecasts
      .filter((f) => f.model === m.model && isNum(f.predicted_price))
      .map((f) => ({ time: seconds(f.target_time) - HOUR_S, value: f.predicted_price }))
      .filter((p) => !last || p.time <= last.time); // the pending hour is drawn by `next`
    s.past.setData(byTime(past));
    const p = state.predictions.get(m.model);
    const next = [], band = [], markers = [];
    const t = p && !p.error ? seconds(p.target_time) - HOUR_S : NaN;
    if (bars.length && isNum(p?.predicted_price) && Number.isFinite(t)) {
      const before = bars.findLast((b) => b.time < t); // the segment starts at the close before (the last one)
      if (before) next.push({ time: before.time, value: before.close });
      next.push({ time: t, value: p.predicted_price });
      markers.push({ time: t, position: "inBar", shape: "circle", color: colorOf(m.model), size: 1.3 });
      // optional fields: absent until the service has intervals; either may come alone
      const [i80, i95] = [p.interval_80, p.interval_95].map((iv) => (isInterval(iv) ? [Math.min(...iv), Math.max(...iv)] : null));
      const body = i80 ?? [p.predicted_price, p.predicted_price], wick = i95 ?? body;
      if (i80 || i95) band.push({ time: t, open: body[0], close: body[1], low: Math.min(wick[0], body[0]), high: Math.max(wick[1], body[1]) });
    }
    s.next.setData(next);
    s.band.setData(band);
    s.markers.setMarkers(markers);
  }
  applyVisibility();
  if (bars.length && !userMoved) defaultView(bars.length);
  placeholder.hidden = bars.length > 0;
  if (!bars.length) placeholder.textContent = placeholderText();
  renderLegend();
}

/** All 7 days where there is room; the last 3 days on a phone (pan or pinch for more). */
function defaultView(count) {
  const scale = chart.timeScale();
  if ($("chart").clientWidth >= 600 || count <= 72) return scale.fitContent();
  scale.setVisibleLogicalRange({ from: count - 72, to: count + 2 });
}

function placeholderText() {
  if (notices.has("candles")) return "The candles could not be loaded (see the notice above).";
  if (state.status && !state.status.freshness?.as_of) {
    return `No candles for ${state.symbol} yet: the chart appears once the online features are loaded.`;
  }
  return `No candles for ${state.symbol} in the last 7 days yet.`;
}

function applyVisibility() {
  for (const [model, s] of modelSeries) allSeries(s).forEach((x) => x.applyOptions({ visible: isEnabled(model) }));
}

/** Forgets the previous symbol's data and drawing. */
function resetChart() {
  userMoved = false;
  Object.assign(state, { status: null, signature: null, models: [], candles: [], forecasts: [],
    predictions: new Map(), perf: { "24h": null, "7d": null } });
  if (chart) {
    candleSeries.setData([]);
    [...modelSeries.keys()].forEach(dropSeries);
  }
  const placeholder = $("chart-placeholder");
  placeholder.textContent = `Loading ${state.symbol}…`;
  placeholder.hidden = false;
  renderLegend();
}

/** The line above the chart: OHLC and each model's forecast at the hovered hour (else the latest). */
function renderLegend(param) {
  const el = $("chart-legend");
  const bars = candleSeries?.data() ?? [];
  if (!bars.length) return el.replaceChildren();
  const hovering = param?.time !== undefined && param.seriesData;
  const bar = hovering ? param.seriesData.get(candleSeries) : bars.at(-1);
  const items = [h("span", { class: "item" }, h("b", null, state.symbol),
    hovering ? utc(new Date(param.time * 1000).toISOString()) : "latest")];
  if (bar) {
    const dir = bar.close >= bar.open ? "up" : "down";
    items.push(h("span", { class: "item" }, h("span", { class: "ohlc" }, `O ${plain(bar.open)} H ${plain(bar.high)} L ${plain(bar.low)} `),
      "C ", h("span", { class: dir }, plain(bar.close))));
  }
  for (const m of state.models) {
    const s = modelSeries.get(m.model);
    if (!s || !isEnabled(m.model)) continue;
    const point = hovering ? param.seriesData.get(s.past) ?? param.seriesData.get(s.next) : null;
    const value = hovering ? point?.value : state.predictions.get(m.model)?.predicted_price;
    items.push(h("span", { class: "item model-item" }, swatch(m.model), `${m.model}${hovering ? "" : " next"} ${plain(value)}`));
  }
  el.classList.toggle("hovering", Boolean(hovering));
  el.replaceChildren(...items);
}

// ---------------------------------------------------------------- panels

function renderAll() {
  $("chart-title").firstChild.textContent = `${state.symbol}, last 7 days `;
  renderToggles();
  drawChart();
  renderCards();
  renderTrack();
  renderStatus();
  renderBanners();
  renderLastUpdate();
}

function renderToggles() {
  const box = $("model-toggles");
  box.replaceChildren(box.querySelector("legend"), ...state.models.map((m) => {
    const input = h("input", { type: "checkbox", value: m.model, "data-model": m.model, checked: isEnabled(m.model) });
    input.addEventListener("change", () => {
      state.enabled[m.model] = input.checked;
      try { localStorage.setItem("candlecast.enabled", JSON.stringify(state.enabled)); } catch { /* private mode */ }
      applyVisibility();
      renderLegend();
      renderCards();
    });
    return h("label", { title: `Show ${m.model} on the chart` }, input, swatch(m.model), m.model);
  }));
}

/** A value with its raw number in data-value (full precision, for tests and copy-paste). */
const field = (tag, name, value, text, cls) =>
  h(tag, { class: cls, "data-field": name, "data-value": isNum(value) ? String(value) : "" }, text);
const item = (label, ...value) => [h("dt", null, label), h("dd", null, ...value)];

function renderCards() {
  const box = $("forecast-cards");
  const shown = state.models.filter((m) => isEnabled(m.model));
  if (!state.models.length) return box.replaceChildren(h("p", { class: "empty" }, `No models served for ${state.symbol}.`));
  if (!shown.length) return box.replaceChildren(h("p", { class: "empty" }, "Every model is switched off (see the toggles above)."));
  box.replaceChildren(...shown.map(card));
}

function card(m) {
  const p = state.predictions.get(m.model);
  const attrs = { class: "card", "data-model": m.model, style: `--model-color:${colorOf(m.model)}` };
  const head = h("div", { class: "card-head" }, h("h3", null, m.model),
    m.default ? badge("default", "default") : null, p?.stale ? badge("stale data", "mid") : null);
  if (!p || p.error) {
    const why = p?.error?.code === "features_unavailable" ? "No forecast yet: no online features." : `No forecast: ${p?.error?.message ?? "not loaded"}`;
    return h("article", { ...attrs, class: "card error", "data-state": "error" }, head,
      h("p", { class: "why" }, why), field("span", "predicted_price", null, "", "visually-hidden"));
  }
  const change = p.predicted_change_pct;
  const dir = change > 0 ? "up" : change < 0 ? "down" : "flat";
  const arrow = { up: "▲", down: "▼", flat: "■" }[dir];
  return h("article", { ...attrs, "data-state": "ok", "data-version": p.model_version }, head,
    h("div", { class: "card-price" },
      field("span", "predicted_price", p.predicted_price, usd(p.predicted_price), "big"),
      field("span", "predicted_change_pct", change, `${arrow} ${signedPct(change)}`, `change ${dir}`)),
    h("dl", null,
      item("Now", field("span", "current_price", p.current_price, usd(p.current_price))),
      item("Change", field("span", "predicted_change", p.predicted_change, signedUsd(p.predicted_change))),
      item("Target", when(p.target_time, "target_time")),
      isInterval(p.interval_80) ? item("80 % interval", intervalText(p.interval_80, "interval_80")) : null,
      isInterval(p.interval_95) ? item("95 % interval", intervalText(p.interval_95, "interval_95")) : null,
      isNum(p.p_up) ? item("P(up)", field("span", "p_up", p.p_up, share(p.p_up, 0))) : null,
      item("Version", h("span", { class: "version", "data-field": "model_version", "data-value": p.model_version ?? "" }, p.model_version ?? "—"))));
}
const intervalText = (iv, name) =>
  h("span", { "data-field": name, "data-value": `${iv[0]},${iv[1]}` }, `${usd(iv[0])} – ${usd(iv[1])}`);

function renderTrack() {
  const body = $("track-record").tBodies[0];
  const rows = new Map(); // "model|version" -> {model, version, "24h": row, "7d": row}
  for (const window of ["7d", "24h"]) {
    for (const row of state.perf[window]?.rows ?? []) {
      if (row.symbol && row.symbol !== state.symbol) continue;
      const key = `${row.model}|${row.model_version}`;
      if (!rows.has(key)) rows.set(key, { model: row.model, version: row.model_version });
      rows.get(key)[window] = row;
    }
  }
  if (!rows.size) {
    const text = notices.has("performance-7d") || notices.has("performance-24h")
      ? "The track record could not be loaded (see the notice above)." : `No data yet: no scored forecasts for ${state.symbol} in the last 7 days.`;
    return body.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: 10 }, text)));
  }
  const served = new Set([...state.models, ...(state.status?.champions ?? [])].map((c) => `${c.model}|${c.model_version}`));
  const order = state.models.map((m) => m.model); // rows in the models' order, the served version first
  const rank = (r) => 2 * (order.includes(r.model) ? order.indexOf(r.model) : order.length) + !served.has(`${r.model}|${r.version}`);
  const sorted = [...rows.values()].sort((a, b) => rank(a) - rank(b));
  body.replaceChildren(...sorted.map((r) => trackRow(r, served)));
}

function trackRow(r, served) {
  const week = r["7d"], day = r["24h"];
  const ratio = (week ?? day).mae_ratio_vs_persistence; // the row's verdict: its 7 d ratio
  const worse = isNum(ratio) && ratio > 1;
  const retired = served.size > 0 && !served.has(`${r.model}|${r.version}`);
  const cls = [worse && "worse", retired && "retired"].filter(Boolean).join(" ") || null;
  return h("tr", { "data-model": r.model, "data-version": r.version, class: cls },
    h("td", null, swatch(r.model), " ", r.model, " ", (week ?? day).is_default ? badge("default", "default") : null,
      worse ? [" ", badge("▲ worse than persistence", "bad")] : null),
    h("td", { class: "version", title: r.version }, r.version, retired ? [" ", badge("not served")] : null),
    numCell("24h", "mae", day, usd), numCell("24h", "persistence_mae", day, usd), ratioCell("24h", day),
    numCell("7d", "mae", week, usd), numCell("7d", "persistence_mae", week, usd), ratioCell("7d", week),
    directionCell(week), numCell("7d", "n", week, (v) => String(v)));
}

function numCell(window, name, row, format, cls = "num") {
  const value = row?.[name];
  return h("td", { class: cls, "data-field": `${window}.${name}`, "data-value": isNum(value) ? String(value) : "" },
    isNum(value) ? format(value) : "—");
}
function ratioCell(window, row) {
  const value = row?.mae_ratio_vs_persistence;
  const cell = numCell(window, "mae_ratio_vs_persistence", row, (v) => v.toFixed(3),
    `num ${value > 1 ? "worse" : value < 1 ? "better" : ""}`);
  // a label, not colour alone: ratio > 1 is worse than persistence
  if (value > 1) cell.append(h("span", { class: "flag", title: "worse than persistence (MAE ratio > 1)" }, "▲ worse"));
  else if (value < 1) cell.append(h("span", { class: "flag", title: "beats persistence (MAE ratio < 1)" }, "✓"));
  return cell;
}
function directionCell(row) {
  const cell = numCell("7d", "directional_accuracy", row, (v) => share(v));
  const ci = row?.directional_accuracy_ci95;
  if (isInterval(ci)) {
    cell.dataset.ci95 = `${ci[0]},${ci[1]}`;
    cell.append(h("br"), h("span", { class: "band", title: "95 % Wilson band" }, `${share(ci[0], 0)}–${share(ci[1], 0)}`));
  }
  return cell;
}

const block = (name, title, mark, ...body) =>
  h("div", { class: `status-block${name === "models" ? " wide" : ""}`, "data-block": name }, h("h3", null, title, mark), ...body);
const VERDICTS = { stable: "ok", none: "ok", moderate: "mid", significant: "bad", major: "bad" }; // badge colours
const verdictBadge = (v) => badge(v === "none" ? "stable" : v, VERDICTS[v] ?? ""); // PSI "none": nothing moved

function renderStatus() {
  const box = $("status-body");
  const s = state.status;
  if (!s) return box.replaceChildren(h("p", { class: "empty" }, "The status could not be loaded (see the notice above)."));
  const f = s.freshness ?? {};
  const fresh = !f.as_of ? badge("no data", "bad") : f.stale ? badge("stale", "mid") : badge("fresh", "ok");
  const blocks = [
    block("freshness", "Data", fresh, h("dl", null,
        item("Last candle closed", when(f.as_of, "freshness.as_of")),
        item("Stale after", isNum(f.stale_after_seconds) ? duration(f.stale_after_seconds) : "—"),
        f.message ? item("Note", f.message) : null)),
    liveLoopBlock(s.live_loop),
    retrainBlock(s.retrain ?? {}),
    modelsBlock(s.champions ?? [], s.drift ?? []),
  ];
  box.replaceChildren(...blocks);
}

/** One row per model: its champion (version, promotion) and its drift verdict. */
function modelsBlock(champions, drift) {
  const names = [...new Set([...champions, ...drift].map((x) => x.model))];
  const head = h("thead", null, h("tr", null, ["Model", "Champion version", "Promoted", "Eval ratio", "Drift"].map((t) => h("th", { class: t === "Eval ratio" ? "num" : null,
    title: t === "Eval ratio" ? "MAE / persistence MAE on the evaluation window it was chosen on" : null }, t))));
  const rows = names.map((model) => {
    const c = champions.find((x) => x.model === model) ?? {};
    const d = drift.find((x) => x.model === model && x.model_version === c.model_version) ?? drift.find((x) => x.model === model) ?? {};
    return h("tr", { "data-model": model, "data-version": c.model_version ?? "", "data-verdict": d.verdict ?? "" },
      h("td", { class: "nowrap" }, swatch(model), " ", model, c.default ? [" ", badge("default", "default")] : null),
      h("td", { class: "version" }, c.model_version ?? "—"),
      h("td", null, c.promoted_at ? when(c.promoted_at, "promoted_at") : h("span", { class: "muted" }, "never")),
      h("td", { class: "num", "data-field": "mae_ratio_vs_persistence", "data-value": c.mae_ratio_vs_persistence ?? "" }, fixed(c.mae_ratio_vs_persistence, 3)),
      h("td", { "data-field": "drift" }, d.verdict ? verdictBadge(d.verdict) : h("span", { class: "muted" }, "not computed"),
        d.feature ? h("span", { class: "muted" }, ` ${d.feature}${isNum(d.psi) ? ` · PSI ${d.psi.toFixed(2)}` : ""}`) : null));
  });
  return block("models", "Champions and drift", null, rows.length ? h("div", { class: "table-scroll" }, h("table", { class: "data-table compact" }, head, h("tbody", null, rows)))
      : h("p", { class: "empty" }, "No champion promoted yet."));
}

function liveLoopBlock(loop) {
  if (!loop) {
    return block("live_loop", "Live loop", badge("no heartbeat", "bad"), h("p", { class: "empty" }, "No heartbeat: is ", h("code", null, "candlecast live"), " running?"));
  }
  // It beats every minute; past 10 min (the container healthcheck's limit) it has likely stopped.
  const late = isNum(loop.age_seconds) && loop.age_seconds > 600;
  const mark = loop.error ? badge("unreadable", "bad") : late ? badge(`silent ${duration(loop.age_seconds)}`, "bad") : badge(loop.state || "?", "ok");
  return block("live_loop", "Live loop", mark,
    h("dl", null, item("State", h("span", { "data-field": "live_loop.state" }, loop.state || "—")),
      item("Heartbeat", when(loop.heartbeat_at, "live_loop.heartbeat_at")), loop.error ? item("Error", loop.error) : null));
}

function retrainBlock(r) {
  const last = r.last;
  const result = !last ? null : last.ok ? badge("ok", "ok") : badge("failed", "bad");
  return block("retrain", "Retraining", result, h("dl", null,
      last ? [
        item("Last", when(last.at, "retrain.last.at")),
        item("Family", `${last.family ?? "—"} (${last.trigger ?? "?"} trigger)`),
        item("Decision", h("span", { "data-field": "retrain.last.decision" }, last.decision ?? "—"),
          last.stage ? [" ", badge(last.stage)] : null),
      ] : item("Last", "never"),
      item("Next due", when(r.next_due, "retrain.next_due")),
      isNum(r.every_hours) ? item("Every", `${r.every_hours} h`) : null,
      r.message ? item("Note", r.message) : null));
}

function renderBanners() {
  const f = state.status?.freshness;
  const banner = $("stale-banner");
  const stale = Boolean(f?.stale && f.as_of); // without as_of, the "no online features" notice says it
  if (stale) {
    const age = (Date.now() + state.skewMs - parseTime(f.as_of)) / 1000;
    const hours = (s) => (isNum(s) ? (s / 3600).toFixed(1) : "?");
    banner.replaceChildren(
      h("p", null, h("strong", null, "Features are stale: "),
        `last candle closed ${hours(age)} h ago (threshold ${hours(f.stale_after_seconds)} h). `,
        "Forecasts are made from old data until the live loop catches up."),
      f.message ? h("p", { class: "muted-line" }, `Server: ${f.message}`) : null);
  }
  banner.hidden = !stale;
  // No online features: an expected state (a fresh install), said plainly once.
  const missing = state.status && !f?.as_of ? f?.message ?? null
    : [...state.predictions.values()].find((p) => p.error?.code === "features_unavailable")?.error.message;
  notice("features", missing === undefined ? null : [
    h("span", { class: "kind" }, `No online features for ${state.symbol} yet. `),
    "Run ", h("code", null, "candlecast live"), " or ", h("code", null, "feast materialize"),
    " to load them; this page refreshes by itself.",
    missing ? [h("br"), h("span", { class: "muted-line" }, `Server: ${missing}`)] : null]);
}

function renderLastUpdate() {
  const el = $("last-update");
  const asOf = state.status?.freshness?.as_of;
  el.replaceChildren(...h("span", null,
    asOf ? ["Last candle ", h("time", { datetime: asOf, "data-field": "as_of" }, utc(asOf))] : "No data yet",
    state.checkedAt ? [" · checked ", h("span", { "data-ago": state.checkedAt }, ago(state.checkedAt))] : null).childNodes);
  el.dataset.asOf = asOf ?? "";
}

window.candlecast = { state, get chart() { return chart; } }; // for debugging in the console
safely(start);
