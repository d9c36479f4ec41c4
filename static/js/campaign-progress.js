// The campaign page's progress bar: while the campaign is sending (or about to start) it asks
// the progress JSON every 2 seconds and updates the bar and the counts; when the status
// changes (sent, paused, waiting for the winner…) it reloads the page so the buttons match.
// A campaign scheduled for later is checked every 30 seconds until its time comes.
(() => {
  "use strict";
  const EVERY_MS = 2000;
  const SCHEDULED_EVERY_MS = 30000;

  function start(panel) {
    const url = panel.dataset.progressUrl;
    const shownStatus = panel.dataset.status;
    const format = new Intl.NumberFormat(document.documentElement.lang || undefined);

    function show(data) {
      panel.querySelector("[data-percent-bar]").value = data.percent;
      panel.querySelectorAll("[data-field]").forEach((element) => {
        const value = data[element.dataset.field];
        if (value !== undefined) element.textContent = format.format(value);
      });
      panel.querySelector("[data-duplicates]").hidden = !data.possibly_duplicated;
    }

    async function poll() {
      let data;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error(String(response.status));
        data = await response.json();
      } catch {
        setTimeout(poll, EVERY_MS * 2); // the server is busy or restarting: try again later
        return;
      }
      show(data);
      if (data.status !== shownStatus) {
        window.location.reload();
      } else if (data.active) {
        setTimeout(poll, EVERY_MS);
      } else if (data.status === "scheduled") {
        setTimeout(poll, SCHEDULED_EVERY_MS);
      }
    }

    if (panel.dataset.active === "true") setTimeout(poll, EVERY_MS);
    else if (shownStatus === "scheduled") setTimeout(poll, SCHEDULED_EVERY_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const panel = document.getElementById("campaign-progress");
    if (panel) start(panel);
  });
})();
