/* Shared helpers for every explorer page: API calls, formatting, jobs and their live curves. */
(function () {
  "use strict";

  async function api(path, opts) {
    opts = opts || {};
    const init = { method: opts.method || "GET", headers: {} };
    if (opts.json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.json);
    } else if (opts.body !== undefined) {
      init.body = opts.body;
    }
    const res = await fetch(path, init);
    let data = null;
    const type = res.headers.get("content-type") || "";
    if (type.includes("application/json")) data = await res.json();
    if (!res.ok) {
      const msg = data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail))
        : `${res.status} ${res.statusText}`;
      const err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  const fmt = {
    pct(v, digits) { return v === null || v === undefined ? "–" : (v * 100).toFixed(digits ?? 1) + "%"; },
    int(v) { return v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US"); },
    bytes(v) {
      if (v === null || v === undefined) return "–";
      if (v < 1024) return v + " B";
      if (v < 1024 * 1024) return (v / 1024).toFixed(1) + " KB";
      return (v / 1024 / 1024).toFixed(2) + " MB";
    },
    ratio(v) { return v === null || v === undefined ? "–" : (v >= 10 ? v.toFixed(0) : v.toFixed(1)) + "×"; },
    secs(v) { return v === null || v === undefined ? "–" : v < 60 ? v.toFixed(1) + " s" : (v / 60).toFixed(1) + " min"; },
    ago(t) {
      const s = Date.now() / 1000 - t;
      if (s < 60) return "just now";
      if (s < 3600) return Math.floor(s / 60) + " min ago";
      if (s < 86400) return Math.floor(s / 3600) + " h ago";
      return new Date(t * 1000).toLocaleDateString();
    },
  };

  function esc(s) {
    return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function label(m) { return m.name ? m.name : m.id; }
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.from((root || document).querySelectorAll(sel)); }

  let toastTimer = null;
  function toast(msg, bad) {
    let t = $(".toast");
    if (!t) { t = document.createElement("div"); t.className = "toast"; document.body.appendChild(t); }
    t.textContent = msg;
    t.classList.toggle("bad", !!bad);
    t.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.classList.remove("show"), 3500);
  }
  function showError(box, err) {
    if (!box) { toast(err.message || String(err), true); return; }
    box.textContent = err ? (err.message || String(err)) : "";
    box.classList.toggle("show", !!err);
  }

  /* Read a <form> into a plain object: numbers for type=number, null for empty optional fields. */
  function formData(form) {
    const out = {};
    for (const input of $all("input, select", form)) {
      if (!input.name || input.disabled) continue;
      if (input.type === "radio" && !input.checked) continue;
      if (input.type === "checkbox") { out[input.name] = input.checked; continue; }
      const v = input.value.trim();
      if (v === "") { out[input.name] = null; continue; }
      out[input.name] = input.type === "number" || input.type === "range" ? Number(v) : v;
    }
    return out;
  }

  /* --- jobs badge in the top bar --------------------------------------------- */
  async function refreshBadge() {
    const badge = $("#jobs-badge");
    if (!badge) return;
    try {
      const data = await api("/api/jobs");
      const running = data.jobs.filter((j) => j.status === "running").length;
      const queued = data.jobs.filter((j) => j.status === "queued").length;
      badge.classList.toggle("busy", running > 0);
      $(".txt", badge).textContent = running || queued ? `${running} running · ${queued} queued` : "no jobs running";
      setTimeout(refreshBadge, running || queued ? 1500 : 5000);
    } catch (e) {
      setTimeout(refreshBadge, 5000);
    }
  }

  /* --- a jobs panel: list + live curves of the selected job ------------------- */
  function JobsPanel(opts) {
    this.kind = opts.kind;              // "train" | "prune" | ...
    this.listEl = opts.list;
    this.lossEl = opts.loss;
    this.accEl = opts.acc;
    this.statusEl = opts.status;
    this.onDone = opts.onDone || (() => {});
    this.onEvent = opts.onEvent || (() => {});
    this.selected = null;
    this.source = null;
    this.events = [];
    this.job = null;
  }
  // a job was just submitted: say whether it runs or waits, list it and follow it
  JobsPanel.prototype.started = async function (job, what) {
    toast(job.status === "queued" && job.position > 1 ? `queued (position ${job.position})` : `${what} started`);
    await this.refresh(false);
    this.select(job.id);
  };
  JobsPanel.prototype.refresh = async function (selectLatest) {
    const data = await api("/api/jobs");
    const jobs = data.jobs.filter((j) => j.kind === this.kind);
    this.renderList(jobs);
    if ((selectLatest || !this.selected) && jobs.length) {
      const active = jobs.find((j) => j.status === "running") || jobs.find((j) => j.status === "queued") || jobs[0];
      this.select(active.id);
    } else if (!jobs.length) {
      this.drawCurves();
      this.renderStatus();
    }
    const busy = jobs.some((j) => j.status === "running" || j.status === "queued");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(false), busy ? 1500 : 6000);
  };
  JobsPanel.prototype.renderList = function (jobs) {
    if (!jobs.length) { this.listEl.innerHTML = `<div class="empty">No ${this.kind} jobs yet.</div>`; return; }
    this.listEl.innerHTML = jobs.map((j) => {
      const detail = j.status === "queued" ? `waiting, position ${j.position} in the queue`
        : j.status === "running" ? `${j.phase || "starting"} · ${Math.round(j.progress * 100)}%`
        : j.status === "done" && j.result && j.result.model ? `model <a href="/inside?model=${esc(j.result.model)}">${esc(j.result.name || j.result.model)}</a>` +
          (j.result.test_accuracy !== undefined ? ` · test accuracy ${fmt.pct(j.result.test_accuracy, 2)}` : "")
        : j.status === "done" && j.result && j.result.report ? `kept ${fmt.int(j.result.report.kept_count)} of ${fmt.int(j.result.report.original_count)} (${esc(j.result.report.strategy)})`
        : esc(j.error || "");
      return `<div class="job ${j.id === this.selected ? "selected" : ""}" data-job="${esc(j.id)}">
        <div class="title">${esc(j.title)}</div><div><span class="pill ${j.status}">${j.status}</span></div>
        <div class="detail">${detail} · ${fmt.ago(j.created)}</div>
        ${j.status === "running" ? `<div class="progress"><div style="width:${Math.round(j.progress * 100)}%"></div></div>` : ""}
      </div>`;
    }).join("");
    for (const row of $all(".job", this.listEl)) {
      row.addEventListener("click", (e) => { if (e.target.tagName !== "A") this.select(row.dataset.job); });
    }
  };
  JobsPanel.prototype.select = function (jobId) {
    if (this.selected === jobId && this.source) return;
    this.selected = jobId;
    for (const row of $all(".job", this.listEl)) row.classList.toggle("selected", row.dataset.job === jobId);
    if (this.source) this.source.close();
    this.events = [];
    this.job = null;
    this.drawCurves();
    const src = new EventSource(`/api/jobs/${encodeURIComponent(jobId)}/events`);
    this.source = src;
    let pending = false;
    const redraw = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; this.drawCurves(); }); } };
    src.addEventListener("progress", (e) => { const ev = JSON.parse(e.data); this.events.push(ev); this.onEvent(ev); redraw(); });
    src.addEventListener("status", (e) => { this.job = JSON.parse(e.data); this.renderStatus(); });
    src.addEventListener("end", (e) => {
      this.job = JSON.parse(e.data);
      src.close();
      this.source = null;
      this.renderStatus();
      this.drawCurves();
      this.refresh(false);
      if (this.job.status === "done") this.onDone(this.job);
    });
    src.onerror = () => { /* the browser reconnects by itself with Last-Event-ID */ };
  };
  JobsPanel.prototype.renderStatus = function () {
    const box = this.statusEl;
    if (!box) return;
    const j = this.job;
    if (!j) { box.innerHTML = `<span class="muted">Start a job to see its curves here.</span>`; return; }
    const cancel = j.status === "running" || j.status === "queued"
      ? `<button class="small danger" id="cancel-job">Cancel</button>` : "";
    const pos = j.status === "queued" ? ` · position ${j.position} in the queue` : "";
    box.innerHTML = `<span class="pill ${j.status}" id="job-status">${j.status}</span>
      <span>${esc(j.title)}${pos}</span><span class="spacer"></span>${cancel}`;
    const btn = $("#cancel-job", box);
    if (btn) btn.addEventListener("click", async () => {
      btn.disabled = true;
      try { this.job = await api(`/api/jobs/${j.id}/cancel`, { method: "POST" }); this.renderStatus(); }
      catch (err) { toast(err.message, true); }
    });
  };
  /* x axis: epochs (fractional within an epoch); one series per phase. Pruning jobs also
     show the accuracy right after pruning (x = 0), the test accuracy after each fine-tune
     epoch, and the parent's accuracy as a dashed reference line. */
  JobsPanel.prototype.drawCurves = function () {
    if (!this.lossEl) return;
    const phases = {};
    let before = null;
    for (const ev of this.events) {
      if (ev.kind === "info" && ev.extra && ev.extra.accuracy_before_finetune !== undefined) before = ev.extra.accuracy_before_finetune;
      if (ev.kind !== "batch" && ev.kind !== "epoch") continue;
      if (ev.loss === undefined) continue;
      const p = (phases[ev.phase] = phases[ev.phase] || { loss: [], acc: [], val: [] });
      const perEpoch = ev.total_steps / Math.max(1, ev.epochs);
      const x = ev.kind === "epoch" ? ev.epoch : ev.step / perEpoch;
      if (ev.kind === "batch" || !p.loss.length || p.loss[p.loss.length - 1][0] < x) {
        p.loss.push([x, ev.loss]);
        p.acc.push([x, ev.accuracy]);
      }
      if (ev.val_accuracy !== undefined) p.val.push([x, ev.val_accuracy]);
    }
    const prune = this.kind === "prune";
    const names = Object.keys(phases);
    const color = (i) => Charts.COLORS[i % Charts.COLORS.length];
    const lossSeries = names.map((n, i) => ({ name: n, points: phases[n].loss, color: color(i) }));
    const phaseName = (n) => ({ train: "training", finetune: "fine-tuning" }[n] || n);
    const accSeries = names.map((n, i) => ({ name: phaseName(n) + " (running mean)", points: phases[n].acc, color: color(i) }));
    names.forEach((n, i) => {
      const start = prune && before !== null && i === 0 ? [[0, before]] : [];
      if (phases[n].val.length || start.length) {
        accSeries.push({ name: prune ? "test accuracy" : phaseName(n) + " (validation)", points: start.concat(phases[n].val),
          color: prune ? "#111827" : color(i), dash: !prune, dots: true });
      }
    });
    if (prune && before !== null && !names.length) accSeries.push({ name: "right after pruning", points: [[0, before]], color: "#111827", dots: true });
    const r = this.job && this.job.result;
    const maxX = Math.max(1, ...names.flatMap((n) => phases[n].loss.map((p) => p[0])));
    if (!prune && r && r.test_accuracy !== undefined) accSeries.push({ name: "test accuracy", points: [[maxX, r.test_accuracy]], color: "#111827", dots: true });
    if (prune && r && r.parent_accuracy != null) accSeries.push({ name: "parent", points: [[0, r.parent_accuracy], [maxX, r.parent_accuracy]], color: "#98a2b3", dash: true });
    const xMin = prune && before !== null ? 0 : undefined;
    Charts.line(this.lossEl, lossSeries, { title: "Loss", xLabel: "epoch", yMin: 0, xMin, empty: "waiting for the first batches…", height: 220 });
    // zoom in when every accuracy is high, in steps of 10 %, so small changes stay visible
    const accs = accSeries.flatMap((s) => s.points.map((p) => p[1]));
    const yMin = accs.length ? Math.max(0, Math.floor((Math.min(...accs) - 0.05) * 10) / 10) : 0;
    Charts.line(this.accEl, accSeries, { title: "Accuracy", xLabel: "epoch", yMin, yMax: 1, height: 220, xMin,
      yFormat: (v) => Math.round(v * 100) + "%", empty: "waiting for the first batches…" });
    const legend = this.accEl.parentElement.querySelector(".legend");
    if (legend) legend.innerHTML = accSeries.map((s) => `<span><i style="background:${s.color}"></i>${esc(s.name)}</span>`).join("");
    this.lossEl.dataset.points = String(names.reduce((a, n) => a + phases[n].loss.length, 0));
  };

  /* model <select> / checklist helpers */
  async function loadModels() { return (await api("/api/models")).models; }
  function fillSelect(select, models, selected) {
    select.innerHTML = models.length ? models.map((m) =>
      `<option value="${esc(m.id)}" ${m.id === selected || (m.name && m.name === selected) ? "selected" : ""}>${esc(label(m))} · ${esc(m.arch)} · ${fmt.pct(m.test_accuracy)} · ${fmt.pct(m.sparsity, 0)} sparse</option>`).join("")
      : `<option value="">no models yet</option>`;
  }
  function query(name) { return new URLSearchParams(location.search).get(name); }

  window.PL = { api, fmt, esc, label, $, $all, toast, showError, formData, JobsPanel, loadModels, fillSelect, query };
  document.addEventListener("DOMContentLoaded", refreshBadge);
})();
