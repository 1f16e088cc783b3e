// sma portal: small progressive enhancements; every page works without them.
(function () {
  "use strict";
  const MAX_LIVE_LINES = 5000;

  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // code editors (CodeMirror) over the textareas that ask for one
  function editors() {
    if (!window.SmaEditor) return;
    document.querySelectorAll("textarea[data-editor]").forEach((area) => {
      window.SmaEditor.attach(area, area.dataset.editor);
    });
  }

  // forms that ask before they act
  function confirms() {
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  // copy buttons
  function copies() {
    document.querySelectorAll("button[data-copy]").forEach((button) => {
      button.addEventListener("click", async () => {
        const input = document.querySelector(button.dataset.copy);
        input.select();
        try { await navigator.clipboard.writeText(input.value); } catch (e) { document.execCommand("copy"); }
        button.textContent = "Copied";
      });
    });
  }

  // the start form: say what is wrong before the server does (it checks again)
  function startForm() {
    const form = document.getElementById("start-form");
    if (!form) return;
    form.addEventListener("submit", (event) => {
      let ok = true;
      form.querySelectorAll("input[name^='p_']").forEach((input) => {
        const error = document.getElementById("err-" + input.name);
        let message = "";
        if (input.type !== "checkbox") {
          if (input.required && input.value.trim() === "") message = "Required.";
          else if (input.type === "number" && input.value !== "" && !input.checkValidity())
            message = input.step === "1" ? "Must be a whole number." : "Must be a number.";
          else if (input.placeholder === "JSON" && input.value.trim() !== "") {
            try { JSON.parse(input.value); } catch (e) { message = "Must be JSON."; }
          }
        }
        if (error) error.textContent = message;
        if (message && ok) { ok = false; input.focus(); }
      });
      if (!ok) event.preventDefault();
    });
  }

  // the jobs list: rows of live jobs refreshed in place (htmx polls, hx-swap="none")
  function refreshRows() {
    document.querySelectorAll("[data-refresh-rows]").forEach((body) => {
      body.addEventListener("htmx:afterRequest", (event) => {
        const xhr = event.detail.xhr;
        if (!xhr || xhr.status !== 200) return;
        const template = document.createElement("tbody");
        template.innerHTML = xhr.responseText;
        template.querySelectorAll("tr[id]").forEach((row) => {
          const old = document.getElementById(row.id);
          if (old) old.replaceWith(row);
        });
      });
    });
  }

  // the separator lines before attempts `from` + 1 ... `to` of a job, worded by the API
  function newAttempt(box, from, to) {
    const lines = [];
    for (let n = from + 1; n <= to; n++) {
      const line = document.createElement("div");
      line.className = "attempt-sep";
      line.setAttribute("role", "separator");
      line.dataset.attempt = n;
      line.textContent = "Attempt " + n;
      box.append(line);
      lines.push(line);
    }
    const badge = document.getElementById("job-attempt");
    if (badge) { badge.textContent = "resumed · attempt " + to; badge.hidden = false; }
    fetch(`/api/v1/jobs/${box.dataset.job}`, {credentials: "same-origin"})
      .then((resp) => (resp.ok ? resp.json() : null))
      .then((job) => {
        if (!job) return;
        const texts = {};
        (job.attempts || []).forEach((a) => { texts[a.number] = a.summary; });
        lines.forEach((line) => {
          if (texts[line.dataset.attempt]) line.textContent = texts[line.dataset.attempt];
        });
      })
      .catch(() => {});  // the plain "Attempt N" stays
  }

  // a job's live output: server-sent events after the last record drawn
  function liveOutput() {
    const box = document.getElementById("records");
    if (!box) return;
    const card = box.closest(".output-card");
    const follow = document.getElementById("follow");
    card.querySelectorAll("input[data-stream]").forEach((check) => {
      check.addEventListener("change", () => {
        card.classList.toggle("hide-" + check.dataset.stream, !check.checked);
      });
    });
    box.addEventListener("scroll", () => {  // scrolling up pauses following
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 8;
      if (!atBottom && follow.checked && box.dataset.auto !== "1") follow.checked = false;
      box.dataset.auto = "";
    });
    const toBottom = () => {
      if (!follow.checked) return;
      box.dataset.auto = "1";
      box.scrollTop = box.scrollHeight;
    };
    follow.addEventListener("change", toBottom);
    toBottom();
    if (box.dataset.final) return;
    let last = parseInt(box.dataset.lastSeq || "0", 10);
    let attempt = parseInt(box.dataset.attempt || "1", 10);
    const source = new EventSource(`/api/v1/jobs/${box.dataset.job}/events?after_seq=${last}`);
    source.addEventListener("record", (event) => {
      const record = JSON.parse(event.data);
      if (record.seq <= last) return;  // after a reconnect
      last = record.seq;
      if (record.attempt > attempt) {  // the job runs again: a line before the new attempt
        newAttempt(box, attempt, record.attempt);
        attempt = record.attempt;
      }
      const line = document.createElement("div");
      line.className = "rec st-" + record.stream;
      line.dataset.seq = record.seq;
      line.dataset.attempt = record.attempt;
      const tag = document.createElement("span");
      tag.className = "stream";
      tag.textContent = record.stream;
      line.append(tag, record.text !== null ? record.text : JSON.stringify(record.value));
      box.append(line);
      while (box.childElementCount > MAX_LIVE_LINES) box.firstElementChild.remove();
      toBottom();
    });
    source.addEventListener("state", (event) => {
      const state = JSON.parse(event.data);
      const badge = document.getElementById("job-status");
      badge.textContent = state.status;
      badge.className = "status s-" + state.status;
    });
    source.addEventListener("status", (event) => {
      const status = JSON.parse(event.data);
      source.close();
      const badge = document.getElementById("job-status");
      badge.textContent = status.status;
      badge.className = "status s-" + status.status;
      document.getElementById("live-state").textContent = "The job has ended.";
      const reason = document.getElementById("job-reason");
      if (reason && status.status_reason) reason.textContent = status.status_reason;
      document.querySelectorAll(".head .actions form").forEach((form) => form.remove());
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    editors(); confirms(); copies(); startForm(); refreshRows(); liveOutput();
    // htmx sends the CSRF token with every request it makes
    document.body.addEventListener("htmx:configRequest", (event) => {
      event.detail.headers["X-CSRF-Token"] = csrf();
    });
  });
})();
