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
      window.SmaEditor.attach(area, area.dataset.editor, area.readOnly);
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
      if (!checkParameters(form)) event.preventDefault();
    });
  }

  // a form's parameter inputs (p_*) checked as the server will; false (and the first bad
  // input focused, each with its message) when one is wrong
  function checkParameters(form) {
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
    return ok;
  }

  // the editor's Test pane: the test runs what the editor holds (saved as the draft first)
  function testPane() {
    const form = document.getElementById("test-form");
    const content = document.getElementById("content");
    if (!form || !content) return;
    form.addEventListener("submit", (event) => {
      if (!checkParameters(form)) { event.preventDefault(); return; }
      let field = form.querySelector("input[name='content']");
      if (!field) {
        field = document.createElement("input");
        field.type = "hidden";
        field.name = "content";
        form.append(field);
      }
      field.value = content.value;
    });
  }

  // the schedule form: only the fields of the chosen frequency (all of them without script)
  function frequencyFields() {
    const select = document.getElementById("frequency");
    if (!select) return;
    const show = () => {
      select.form.querySelectorAll("[data-freq]").forEach((field) => {
        const mine = field.dataset.freq.split(" ").includes(select.value);
        field.hidden = !mine;
        field.querySelectorAll("input, select").forEach((input) => { input.disabled = !mine; });
      });
    };
    select.addEventListener("change", show);
    show();
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

  // the job's facts, status history and attempts, drawn again by the server when the status
  // moves (a later answer wins over an earlier one that arrives late)
  let summaryAsked = 0;
  function refreshSummary() {
    const box = document.getElementById("job-summary");
    if (!box) return;
    const asked = ++summaryAsked;
    fetch(box.dataset.url, {credentials: "same-origin"})
      .then((resp) => (resp.ok ? resp.text() : null))
      .then((html) => { if (html !== null && asked === summaryAsked) box.innerHTML = html; })
      .catch(() => {});  // the page keeps what it shows; the next event tries again
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
      if (badge.textContent === state.status) return;  // what the page was drawn with
      badge.textContent = state.status;
      badge.className = "status s-" + state.status;
      refreshSummary();
    });
    source.addEventListener("status", (event) => {
      const status = JSON.parse(event.data);
      source.close();
      const badge = document.getElementById("job-status");
      badge.textContent = status.status;
      badge.className = "status s-" + status.status;
      document.getElementById("live-state").textContent = "The job has ended.";
      refreshSummary();
      document.querySelectorAll(".head .actions form").forEach((form) => form.remove());
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    editors(); confirms(); copies(); startForm(); frequencyFields(); testPane(); refreshRows();
    liveOutput();
    // htmx sends the CSRF token with every request it makes
    document.body.addEventListener("htmx:configRequest", (event) => {
      event.detail.headers["X-CSRF-Token"] = csrf();
    });
  });
})();
