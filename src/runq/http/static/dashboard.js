// runq dashboard: keeps the server-rendered pages live by polling the JSON API under
// /api/v1 every two seconds, draws the charts, and sends the buttons' POSTs.
// Our own small script, no library. Values from the API only ever go into the page as
// text (textContent, setAttribute), never as markup.
"use strict";

(() => {
  const POLL_MS = 2000;
  const STATES = ["scheduled", "queued", "running", "succeeded", "failed", "cancelled"];
  const OPTIONAL = new Set(["scheduled", "succeeded", "cancelled"]); // phones leave out
  const main = document.getElementById("main");
  if (!main) return;
  const skew = main.dataset.now ? Number(main.dataset.now) - Date.now() / 1000 : 0;
  const now = () => Date.now() / 1000 + skew;

  // -- building the page ---------------------------------------------------------------

  function attrs(el, values) {
    for (const [name, value] of Object.entries(values || {})) {
      if (value === null || value === undefined || value === false) continue;
      el.setAttribute(name, value === true ? "" : String(value));
    }
    return el;
  }

  function fill(el, kids) {
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  const h = (tag, values, ...kids) => fill(attrs(document.createElement(tag), values), kids);
  const SVG = "http://www.w3.org/2000/svg";
  const s = (tag, values, ...kids) =>
    fill(attrs(document.createElementNS(SVG, tag), values), kids);

  function rows(table, empty, items, render) {
    const body = document.querySelector(`${table} tbody`);
    if (!body) return;
    body.replaceChildren(...items.map(render));
    const note = document.querySelector(`[data-empty="${empty}"]`);
    if (note) note.hidden = items.length > 0;
  }

  function setText(selector, text) {
    for (const el of document.querySelectorAll(selector)) el.textContent = text;
  }

  // -- formatting (the same shapes as the server's filters) ----------------------------

  const number = (n) => Number(n || 0).toLocaleString("en-US");
  const pad = (n) => String(n).padStart(2, "0");

  function clock(ts) {
    const d = new Date(ts * 1000);
    const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    return `${day} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function duration(seconds) {
    seconds = Math.max(seconds, 0);
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h ${minutes % 60} min`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h`;
  }

  function ago(ts) {
    const t = now();
    return ts > t ? `in ${duration(ts - t)}` : `${duration(t - ts)} ago`;
  }

  const megabytes = (mb) =>
    mb ? `${Number(mb).toLocaleString("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 })} MB` : "—";

  function when(ts, style = "ago") {
    if (ts === null || ts === undefined) return "—";
    const iso = new Date(ts * 1000).toISOString();
    return h("time", { datetime: iso, "data-ts": ts, "data-style": style, title: clock(ts) },
      style === "ago" ? ago(ts) : clock(ts));
  }

  function localize(root) {
    for (const el of root.querySelectorAll("time[data-ts]")) {
      const ts = Number(el.dataset.ts);
      el.textContent = el.dataset.style === "ago" ? ago(ts) : clock(ts);
      el.title = clock(ts);
    }
  }

  const badge = (state) => h("span", { class: `state state-${state}` }, state);
  const link = (path, params) => `${path}?${new URLSearchParams(params)}`;

  // -- talking to the API --------------------------------------------------------------

  async function api(path, options = {}) {
    const headers = { Accept: "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const reply = await fetch(path, { ...options, headers });
    let body = null;
    try {
      body = await reply.json();
    } catch {
      body = null;
    }
    if (!reply.ok) {
      throw new Error(body && body.error ? body.error.message : `HTTP ${reply.status}`);
    }
    return body;
  }

  const live = document.getElementById("live");
  function setLive(ok, why) {
    if (!live) return;
    live.dataset.state = ok ? "ok" : "error";
    live.dataset.updated = String(Date.now());
    live.textContent = ok ? "live" : "offline";
    live.title = ok ? `Updated at ${clock(Date.now() / 1000)}` : `Cannot reach the broker: ${why}`;
  }

  let refreshNow = async () => {};

  function poll(refresh) {
    let timer = 0;
    let busy = false;
    let again = false;
    async function tick() {
      clearTimeout(timer);
      if (busy) {
        again = true;
        return;
      }
      if (!document.hidden) {
        busy = true;
        try {
          await refresh();
          setLive(true);
        } catch (err) {
          setLive(false, err.message);
        }
        busy = false;
      }
      if (again) {
        again = false;
        tick();
        return;
      }
      timer = setTimeout(tick, POLL_MS);
    }
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) tick();
    });
    refreshNow = tick;
    tick();
  }

  let flashTimer = 0;
  function flash(text, kind = "ok") {
    const el = document.getElementById("flash");
    if (!el) return;
    el.textContent = text;
    el.dataset.kind = kind;
    el.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => {
      el.hidden = true;
    }, 5000);
  }

  // -- rows: the same markup as the templates' macros ----------------------------------

  function queueName(q) {
    return [
      h("a", { href: link("/jobs", { queue: q.name }) }, q.name),
      q.paused ? [" ", h("span", { class: "badge badge-paused" }, "paused")] : null,
    ];
  }

  function queueRow(q) {
    const action = q.paused ? "resume" : "pause";
    return h("tr", { "data-queue": q.name, "data-paused": String(q.paused) },
      h("th", { scope: "row" }, queueName(q)),
      STATES.map((st) =>
        h("td", { class: OPTIONAL.has(st) ? "num opt" : "num", "data-count": st },
          h("a", { href: link("/jobs", { queue: q.name, state: st }) }, number(q.counts[st])))),
      h("td", { class: "actions" },
        h("button", { type: "button", class: "btn", "data-action": action, "data-queue": q.name },
          q.paused ? "Resume" : "Pause")));
  }

  function queueBrief(q) {
    const c = q.counts;
    return h("tr", { "data-queue": q.name, "data-paused": String(q.paused) },
      h("th", { scope: "row" }, queueName(q)),
      h("td", { class: "num", "data-count": "waiting" }, number((c.scheduled || 0) + (c.queued || 0))),
      h("td", { class: "num", "data-count": "running" }, number(c.running)),
      h("td", { class: "num opt", "data-count": "failed" }, number(c.failed)));
  }

  function workerState(w) {
    if (w.draining) return h("span", { class: "badge badge-paused" }, "draining");
    if (w.running) return h("span", { class: "badge badge-busy" }, "busy");
    return h("span", { class: "badge" }, "idle");
  }

  function workerRow(w, full) {
    const procs = (w.procs || []).map((p) =>
      h("li", { "data-pid": p.pid }, h("span", { class: "mono" }, p.pid),
        ` ${p.state} · ${number(p.jobs)} jobs · ${megabytes(p.rss_mb)}`));
    const info = w.info || {};
    return h("tr", { "data-worker": w.id, "data-running": w.running },
      h("th", { scope: "row", class: "mono" }, w.id),
      h("td", {}, workerState(w)),
      h("td", full ? {} : { class: "opt" }, w.queues.join(", ")),
      h("td", { class: "num", "data-count": "running" }, `${w.running}/${w.concurrency}`),
      h("td", { class: "num opt" }, number(w.done)),
      h("td", { class: "num" }, megabytes(w.rss_mb)),
      full ? h("td", { class: "procs" }, procs.length ? h("ul", {}, procs) : "—") : null,
      full ? h("td", { class: "opt mono" }, `${info.host ?? "—"}${info.pid ? `:${info.pid}` : ""}`) : null,
      h("td", { class: "opt" }, when(w.connected_at)));
  }

  function jobRow(j) {
    return h("tr", { "data-job": j.id, "data-state": j.state },
      h("td", { class: "num" }, h("a", { href: `/jobs/${j.id}` }, j.id)),
      h("td", { class: "task" }, j.task),
      h("td", {}, j.queue),
      h("td", {}, badge(j.state)),
      h("td", { class: "num" }, `${j.attempts}/${j.max_attempts}`),
      h("td", { class: "opt" }, when(j.submitted_at)),
      h("td", { class: "opt mono" }, j.worker || "—"));
  }

  function failedRow(j) {
    const message = j.error && j.error.message.length > 160
      ? `${j.error.message.slice(0, 157)}...` : j.error && j.error.message;
    return h("tr", { "data-job": j.id, "data-state": j.state },
      h("td", { class: "num" }, h("a", { href: `/jobs/${j.id}` }, j.id)),
      h("td", { class: "task" }, j.task),
      h("td", {}, j.queue),
      h("td", { class: "error-text" }, j.error ? [h("code", {}, j.error.code), " ", message] : "—"),
      h("td", { class: "opt" }, when(j.finished_at)),
      h("td", { class: "actions" }, j.state === "failed"
        ? h("button", { type: "button", class: "btn", "data-action": "retry", "data-job": j.id }, "Retry")
        : badge(j.state)));
  }

  // -- charts: inline SVG, one polyline a series -----------------------------------------

  function niceMax(v) {
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  const short = (v) => (v >= 10000 ? `${Math.round(v / 1000)}k` : number(v));

  function draw(box, series, percent) {
    if (!box) return;
    // One unit a pixel of the box, so the labels keep their size on any screen.
    const W = Math.max(240, Math.round(box.clientWidth || 600));
    const [H, L, R, T, B] = [170, 42, 10, 10, 22];
    const n = series[0].values.length;
    const seen = series.flatMap((x) => x.values.filter((v) => v !== null));
    const top = percent ? 100 : niceMax(Math.max(1, ...seen));
    const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - R)) / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, "aria-hidden": "true" });
    for (const v of [0, top / 2, top]) {
      svg.append(
        s("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
        s("text", { class: "axis", x: L - 6, y: y(v) + 3, "text-anchor": "end" },
          percent ? `${v}%` : short(v)));
    }
    const ticks = [[0, "start", `${n} min ago`], [n >> 1, "middle", `${n - (n >> 1)} min ago`],
      [n - 1, "end", "now"]];
    for (const [i, anchor, label] of ticks) {
      svg.append(s("text", { class: "axis", x: x(i), y: H - 5, "text-anchor": anchor }, label));
    }
    for (const line of series) {
      let run = [];
      const end = () => {
        if (run.length > 1) {
          svg.append(s("polyline", {
            class: `s-${line.name}`, "data-series": line.name,
            points: run.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" "),
          }));
        } else if (run.length === 1) {
          svg.append(s("circle", { class: "dot", "data-series": line.name, cx: run[0][0], cy: run[0][1], r: 3 }));
        }
        run = [];
      };
      line.values.forEach((v, i) => (v === null ? end() : run.push([x(i), y(v)])));
      end();
    }
    box.replaceChildren(svg);
  }

  let lastPoints = null;
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => lastPoints && charts(lastPoints), 150);
  });

  function charts(points) {
    lastPoints = points;
    const sum = (kind) => points.reduce((acc, p) => acc + p[kind], 0);
    const hour = { submitted: sum("submitted"), succeeded: sum("succeeded"), failed: sum("failed") };
    for (const [kind, n] of Object.entries(hour)) setText(`[data-hour="${kind}"]`, number(n));
    const ended = hour.succeeded + hour.failed;
    setText('[data-hour="failure_rate"]', ended ? `${((100 * hour.failed) / ended).toFixed(1)}%` : "—");
    const series = (kind) => ({ name: kind, values: points.map((p) => p[kind]) });
    draw(document.querySelector("#chart-throughput .plot"),
      [series("submitted"), series("succeeded"), series("failed")], false);
    const rate = points.map((p) => (p.succeeded + p.failed ? (100 * p.failed) / (p.succeeded + p.failed) : null));
    draw(document.querySelector("#chart-failures .plot"), [{ name: "rate", values: rate }], true);
  }

  // -- pages -------------------------------------------------------------------------

  async function overview() {
    const [queues, workers, activity] = await Promise.all([
      api("/api/v1/queues"), api("/api/v1/workers"), api("/api/v1/activity"),
    ]);
    const totals = Object.fromEntries(STATES.map((st) => [st, 0]));
    for (const q of queues) {
      for (const [st, n] of Object.entries(q.counts)) totals[st] = (totals[st] || 0) + n;
    }
    for (const st of STATES) setText(`[data-total="${st}"]`, number(totals[st]));
    setText('[data-total="workers"]', number(workers.length));
    setText('[data-total="busy"]', number(workers.reduce((a, w) => a + w.running, 0)));
    setText('[data-total="slots"]', number(workers.reduce((a, w) => a + w.concurrency, 0)));
    rows("#queue-depths", "queues", queues, queueBrief);
    rows("#workers-brief", "workers", workers, (w) => workerRow(w, false));
    charts(activity);
  }

  async function queuesPage() {
    rows("#queues", "queues", await api("/api/v1/queues"), queueRow);
  }

  async function jobsPage() {
    const found = await api(main.dataset.api);
    rows("#jobs", "jobs", found.jobs, main.dataset.page === "failed" ? failedRow : jobRow);
    const older = document.querySelector('[data-pager="older"]');
    if (!older) return;
    older.hidden = !found.next;
    if (found.next) {
      const url = new URL(location.href);
      url.searchParams.set("cursor", found.next);
      older.href = url.pathname + url.search;
    }
  }

  async function workersPage() {
    rows("#workers", "workers", await api("/api/v1/workers"), (w) => workerRow(w, true));
  }

  // The same text as views.signature on the server: when it changes, render the page anew.
  function signature(job) {
    const history = job.history || [];
    const last = history.length ? history[history.length - 1].outcome || "" : "";
    return `${job.state}|${job.attempts}|${job.fence}|${history.length}|${last}`;
  }

  async function jobPage() {
    const job = await api(`/api/v1/jobs/${main.dataset.job}`);
    if (signature(job) === main.dataset.sig) return;
    const reply = await fetch(location.pathname, { headers: { Accept: "text/html" } });
    if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
    const fresh = new DOMParser().parseFromString(await reply.text(), "text/html").getElementById("main");
    if (!fresh) return;
    main.replaceChildren(...fresh.childNodes);
    main.dataset.sig = fresh.dataset.sig;
  }

  // -- buttons -------------------------------------------------------------------------

  const queuePath = (b, verb) => `/api/v1/queues/${encodeURIComponent(b.dataset.queue)}/${verb}`;
  const ACTIONS = {
    pause: (b) => [queuePath(b, "pause"), undefined, () => `Queue ${b.dataset.queue} paused.`],
    resume: (b) => [queuePath(b, "resume"), undefined, () => `Queue ${b.dataset.queue} resumed.`],
    retry: (b) => [`/api/v1/jobs/${b.dataset.job}/retry`, undefined, () => `Job ${b.dataset.job} queued again.`],
    cancel: (b) => [`/api/v1/jobs/${b.dataset.job}/cancel`, undefined, () => `Job ${b.dataset.job} cancelled.`],
    "retry-all": (b) => [
      "/api/v1/jobs/retry-failed",
      JSON.stringify(b.dataset.queue ? { queue: b.dataset.queue } : {}),
      (reply) => `${number(reply.ids.length)} failed jobs queued again.`,
    ],
  };

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    const action = button && ACTIONS[button.dataset.action];
    if (!action || button.disabled) return;
    const [url, body, done] = action(button);
    button.disabled = true;
    try {
      flash(done(await api(url, { method: "POST", body })));
      await refreshNow();
    } catch (err) {
      flash(err.message, "error");
    } finally {
      button.disabled = false;
    }
  });

  const PAGES = {
    overview, queues: queuesPage, jobs: jobsPage, failed: jobsPage, workers: workersPage, job: jobPage,
  };
  const refresh = PAGES[main.dataset.page];
  localize(main);
  if (refresh) {
    poll(async () => {
      await refresh();
      localize(main);
    });
  }
})();
