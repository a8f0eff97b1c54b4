// A going run's page: its log (python) and output (shell) grow as the run writes them
// (runs.execution.RunProgress, about once a second). Polls GET /api/runs/{id}/log/ every second
// with the offsets the page has, appends what follows them, and stops when the run has ended.
"use strict";
// The admin loads a ModelAdmin's Media in the page's head: wait for the page's blocks.
document.addEventListener("DOMContentLoaded", function () {
  const blocks = Array.from(document.querySelectorAll("pre[data-ct-live]"));
  // The words are the djangojs catalogue's (jsi18n/, loaded by admin/base_site.html) in the page's language.
  const _ = window.gettext || ((text) => text);
  const fmt = (text, args) => (window.interpolate ? window.interpolate(text, args) : text.replace("%s", args[0]));
  if (!blocks.length) return;
  const EVERY_MS = 1000;
  const url = blocks[0].dataset.ctUrl;
  const colours = JSON.parse(blocks[0].dataset.ctColours || "{}");
  const words = JSON.parse(blocks[0].dataset.ctWords || "{}");  // a status's word on its badge
  const streams = {};  // field -> {block, offset}
  for (const block of blocks) {
    streams[block.dataset.ctLive] = { block: block, offset: Number(block.dataset.ctOffset) || 0 };
  }
  // One note for the page, beside the run's status (or under its first block).
  const note = document.createElement("span");
  note.className = "ct-live-note";
  note.setAttribute("aria-live", "polite");
  note.style.cssText = "margin-left:8px;font-size:11px;color:var(--body-quiet-color,#666)";
  const badge = document.querySelector(".field-status_badge .ct-badge");
  if (badge) badge.insertAdjacentElement("afterend", note);
  else blocks[0].insertAdjacentElement("afterend", note);
  note.textContent = _("Live: following the run.");
  let failures = 0;

  function show(stream, text, reset) {
    const block = stream.block;
    if (!text && !reset) return;
    // Keep following the end if the reader was there; leave them where they are otherwise.
    const atEnd = block.scrollTop + block.clientHeight >= block.scrollHeight - 4;
    if (reset || block.dataset.ctEmpty) {
      delete block.dataset.ctEmpty;
      block.textContent = text || "—";
      if (!text) block.dataset.ctEmpty = "1";
    } else {
      block.append(document.createTextNode(text));
    }
    if (atEnd) block.scrollTop = block.scrollHeight;
  }

  function ended(status) {
    showStatus(status);
    for (const stream of Object.values(streams)) stream.block.removeAttribute("data-ct-live");
    note.replaceChildren(_("The run ended.") + " ");
    const reload = document.createElement("a");
    reload.href = window.location.href;
    reload.textContent = _("Reload the page for its outcome.");
    note.append(reload);
  }

  function showStatus(status) {
    if (!badge) return;
    badge.textContent = words[status] || status;
    if (colours[status]) badge.style.background = colours[status];
  }

  async function poll() {
    const started = Date.now();
    const params = new URLSearchParams();
    if (streams.log_output) params.set("log_after", String(streams.log_output.offset));
    if (streams.output) params.set("output_after", String(streams.output.offset));
    try {
      const response = await fetch(url + "?" + params, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const body = await response.json();
      for (const [field, prefix] of [["log_output", "log"], ["output", "output"]]) {
        const stream = streams[field];
        if (!stream) continue;
        show(stream, body[field], body[prefix + "_reset"]);
        stream.offset = body[prefix + "_offset"];
      }
      if (failures) note.textContent = _("Live: following the run.");
      failures = 0;
      if (body.finished) {
        ended(body.status);
        return;  // the text grows no more: no further requests
      }
      showStatus(body.status);  // queued, then running
    } catch (err) {
      failures += 1;
      if (failures >= 60) {  // a minute without an answer: leave it to a reload
        note.textContent = fmt(_("Live: stopped, the log could not be read (%s). Reload the page."), [err.message]);
        return;
      }
      note.textContent = fmt(_("Live: could not read the log (%s); trying again."), [err.message]);
    }
    setTimeout(poll, Math.max(0, EVERY_MS - (Date.now() - started)));
  }

  setTimeout(poll, EVERY_MS);
});
