/* A drawing pad: white ink on a black canvas, pointer events (mouse, pen and touch). */
(function () {
  "use strict";
  function DrawPad(canvas, opts) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onStroke = (opts && opts.onStroke) || (() => {});
    this.drawing = false;
    this.empty = true;
    this.clear();
    const pos = (e) => {
      const r = canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * (canvas.width / r.width), (e.clientY - r.top) * (canvas.height / r.height)];
    };
    canvas.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      canvas.setPointerCapture && canvas.setPointerCapture(e.pointerId);
      this.drawing = true;
      this.last = pos(e);
      this.dot(this.last);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!this.drawing) return;
      e.preventDefault();
      const p = pos(e);
      this.line(this.last, p);
      this.last = p;
    });
    const end = () => { if (this.drawing) { this.drawing = false; this.onStroke(); } };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("pointerleave", end);
  }
  DrawPad.prototype.clear = function () {
    this.ctx.fillStyle = "#000";
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.empty = true;
  };
  DrawPad.prototype.style = function () {
    const c = this.ctx;
    c.strokeStyle = "#fff"; c.fillStyle = "#fff";
    c.lineWidth = this.canvas.width / 14; c.lineCap = "round"; c.lineJoin = "round";
  };
  DrawPad.prototype.dot = function (p) {
    this.style();
    this.ctx.beginPath();
    this.ctx.arc(p[0], p[1], this.ctx.lineWidth / 2, 0, Math.PI * 2);
    this.ctx.fill();
    this.empty = false;
  };
  DrawPad.prototype.line = function (a, b) {
    this.style();
    this.ctx.beginPath();
    this.ctx.moveTo(a[0], a[1]);
    this.ctx.lineTo(b[0], b[1]);
    this.ctx.stroke();
    this.empty = false;
  };
  DrawPad.prototype.isEmpty = function () { return this.empty; };
  DrawPad.prototype.toBlob = function () {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  };
  window.DrawPad = DrawPad;
})();
