// Charts of the analytics dashboard (Chart.js, vendored). The figures come from the page's
// JSON block; each chart has a table with the same figures under it, so nothing depends on
// this file. The custom dates are offered only with the "Custom dates" period.
document.addEventListener("DOMContentLoaded", () => {
  const preset = document.getElementById("id_period");
  const customFields = document.querySelectorAll(".field-custom-date");
  const showCustom = () => {
    const custom = preset && preset.value === "custom";
    customFields.forEach((field) => field.classList.toggle("is-inactive", !custom));
  };
  if (preset) {
    preset.addEventListener("change", showCustom);
    showCustom();
  }

  const source = document.getElementById("analytics-chart-data");
  if (!source || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const text = data.text;
  const lang = document.documentElement.lang || undefined;
  const percent = (value) => new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 }).format(value);
  const number = (value) => new Intl.NumberFormat(lang, { maximumFractionDigits: 0 }).format(value);
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#1f6feb";
  const palette = ["#1f6feb", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bc4c00", "#0969da", "#57606a", "#bf3989", "#116329", "#953800", "#6639ba"];
  const base = { responsive: true, maintainAspectRatio: false, animation: false };

  const draw = (id, config) => {
    const canvas = document.getElementById(id);
    if (canvas) canvas.chart = new window.Chart(canvas, config);
  };

  if (data.pareto) {
    const points = data.pareto.x.map((x, i) => ({ x, y: data.pareto.y[i] }));
    draw("pareto-chart", {
      type: "line",
      data: {
        datasets: [
          { label: text.cumulative, data: points, borderColor: accent, backgroundColor: accent, pointRadius: 0, fill: false, tension: 0 },
          { label: text.equality, data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], borderColor: "#9aa3b2", borderDash: [4, 4], pointRadius: 0 },
          { label: `${text.top20}: ${percent(data.pareto.top20[1])}`, data: [{ x: data.pareto.top20[0], y: data.pareto.top20[1] }], borderColor: "#cf222e", backgroundColor: "#cf222e", pointRadius: 6, showLine: false },
        ],
      },
      options: {
        ...base,
        parsing: false,
        plugins: { tooltip: { callbacks: { label: (item) => `${percent(item.parsed.x)} → ${percent(item.parsed.y)}` } } },
        scales: {
          x: { type: "linear", min: 0, max: 1, title: { display: true, text: text.customers }, ticks: { callback: (value) => percent(value) } },
          y: { min: 0, max: 1, title: { display: true, text: text.cumulative }, ticks: { callback: (value) => percent(value) } },
        },
      },
    });
  }

  if (data.deciles) {
    draw("decile-chart", {
      type: "bar",
      data: { labels: data.deciles.labels, datasets: [{ label: text.revenue, data: data.deciles.revenue, backgroundColor: accent }] },
      options: {
        ...base,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => `${text.revenue}: ${number(item.parsed.y)} (${percent(data.deciles.share[item.dataIndex])})` } },
        },
        scales: {
          x: { title: { display: true, text: text.decile } },
          y: { beginAtZero: true, ticks: { callback: (value) => number(value) } },
        },
      },
    });
  }

  if (data.rfm) {
    // Scores 1-5 on both axes; the half steps only leave room for the bubbles.
    const scores = (axis) => { axis.ticks = [1, 2, 3, 4, 5].map((value) => ({ value })); };
    draw("rfm-chart", {
      type: "bubble",
      data: { datasets: [{ label: text.count, data: data.rfm, backgroundColor: "rgba(31, 111, 235, .55)", borderColor: accent }] },
      options: {
        ...base,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => `R ${item.raw.y} F ${item.raw.x}: ${number(item.raw.customers)} (${text.average} ${number(item.raw.average)})` } },
        },
        scales: {
          x: { min: 0.5, max: 5.5, afterBuildTicks: scores, title: { display: true, text: text.frequency } },
          y: { min: 0.5, max: 5.5, afterBuildTicks: scores, title: { display: true, text: text.recency } },
        },
      },
    });
  }

  if (data.cohorts) {
    draw("cohort-chart", {
      type: "line",
      data: {
        labels: data.cohorts.labels,
        datasets: data.cohorts.series.map((series, i) => ({
          label: series.label, data: series.data, borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], pointRadius: 2, tension: 0,
        })),
      },
      options: {
        ...base,
        plugins: { tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${percent(item.parsed.y)}` } } },
        scales: {
          x: { title: { display: true, text: text.month } },
          y: { min: 0, max: 1, title: { display: true, text: text.retention }, ticks: { callback: (value) => percent(value) } },
        },
      },
    });
  }

  const bars = (id, series) => {
    if (!series) return;
    draw(id, {
      type: "bar",
      data: { labels: series.labels, datasets: [{ label: text.ltv, data: series.ltv, backgroundColor: accent }] },
      options: {
        ...base,
        plugins: { legend: { display: false }, tooltip: { callbacks: { label: (item) => `${text.ltv}: ${number(item.parsed.y)}` } } },
        scales: { y: { beginAtZero: true, ticks: { callback: (value) => number(value) } } },
      },
    });
  };
  bars("ltv-cohort-chart", data.ltv_cohorts);
  bars("ltv-channel-chart", data.ltv_channels);
});
