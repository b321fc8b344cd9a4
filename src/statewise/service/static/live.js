// Live figures: poll the page's small figures JSON and patch numbers in place.
//
// The element with data-live names the endpoint. Each answer maps figure names to text (or
// [text, tone], or a moment in epoch seconds shown as an age); every element with that
// data-figure gets the text (and data-tone, or data-since, aged on every poll). The ETag
// makes an unchanged answer a bodiless 304, and the delay doubles while nothing changes (up
// to 30 s), so an idle tab costs next to nothing; a hidden tab does not poll at all. Errors
// (the server restarting) retry with the same backoff. A new layout (a deployment added a
// workflow or state) reloads the page. Other scripts (the graph) hear "statewise:figures".
(function () {
  "use strict";
  const root = document.querySelector("[data-live]");
  if (!root) return;
  const FIRST = 2000;
  const LONGEST = 30000;
  const status = document.querySelector("[data-live-status]");
  let etag = null;
  let delay = FIRST;
  let timer = null;
  let serverSkew = 0; // server clock minus this one, in seconds, from the last full answer
  say("updated " + clock());

  function say(text) {
    if (status) status.textContent = text;
  }

  function clock() {
    const now = new Date();
    return [now.getHours(), now.getMinutes(), now.getSeconds()]
      .map((part) => String(part).padStart(2, "0"))
      .join(":");
  }

  // A duration as the server's age_text says it: 4.2s, 3.1m, 2.0h, 1.5d.
  function ageText(seconds) {
    const units = [["d", 86400], ["h", 3600], ["m", 60]];
    for (const [unit, size] of units) {
      if (seconds >= size) return (seconds / size).toFixed(1) + unit;
    }
    return Math.max(seconds, 0).toFixed(1) + "s";
  }

  function age() {
    const now = Date.now() / 1000 + serverSkew;
    root.querySelectorAll("[data-since]").forEach((node) => {
      const text = ageText(now - Number(node.dataset.since));
      if (node.textContent !== text) node.textContent = text;
    });
  }

  function apply(figures) {
    let changed = false;
    root.querySelectorAll("[data-figure]").forEach((node) => {
      const value = figures[node.dataset.figure];
      if (value === undefined) return;
      if (typeof value === "number") {
        if (node.dataset.since !== String(value)) {
          node.dataset.since = String(value);
          changed = true;
        }
        return;
      }
      delete node.dataset.since;
      const [text, tone] = Array.isArray(value) ? value : [value, null];
      if (node.textContent !== text) {
        node.textContent = text;
        changed = true;
      }
      if (tone !== null && node.dataset.tone !== tone) {
        node.dataset.tone = tone;
        changed = true;
      }
    });
    if (changed) {
      document.dispatchEvent(new CustomEvent("statewise:figures", { detail: figures }));
    }
    return changed;
  }

  function later() {
    clearTimeout(timer);
    timer = null;
    if (document.visibilityState === "hidden") return; // visibilitychange polls again
    timer = setTimeout(poll, delay);
  }

  async function poll() {
    const headers = etag ? { "If-None-Match": etag } : {};
    try {
      const answer = await fetch(root.dataset.live, {
        credentials: "same-origin",
        cache: "no-store",
        headers: headers,
      });
      if (answer.status === 401) {
        say("signed out: reload the page to sign in");
        return;
      }
      if (answer.status !== 304 && !answer.ok) throw new Error("HTTP " + answer.status);
      let changed = false;
      if (answer.status === 200) {
        const body = await answer.json();
        if (body.layout !== root.dataset.layout) {
          location.reload();
          return;
        }
        etag = answer.headers.get("ETag");
        serverSkew = body.now - Date.now() / 1000;
        changed = apply(body.figures);
      }
      age();
      delay = changed ? FIRST : Math.min(delay * 2, LONGEST);
      say("updated " + clock());
    } catch (error) {
      delay = Math.min(delay * 2, LONGEST);
      say("update failed, retrying in " + Math.round(delay / 1000) + " s");
    }
    later();
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      delay = FIRST;
      clearTimeout(timer);
      poll();
    }
  });
  later();
})();
