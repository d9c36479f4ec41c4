// Charts of the RFM page (Chart.js, vendored). The figures come from the page's JSON block;
// each chart has a table with the same figures next to it, so nothing depends on this file.
document.addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("score-chart-data");
  if (!source || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const text = data.text;
  const lang = document.documentElement.lang || undefined;
  const percent = (value) => new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 }).format(value);
  const number = (value) => new Intl.NumberFormat(lang, { maximumFractionDigits: 0 }).format(value);
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#1f6feb";

  const decileCanvas = document.getElementById("decile-chart");
  if (decileCanvas) {
    decileCanvas.chart = new window.Chart(decileCanvas, {
      type: "bar",
      data: {
        labels: data.deciles.labels,
        datasets: [{ label: text.revenue, data: data.deciles.revenue, backgroundColor: accent }],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: (item) => `${text.revenue}: ${number(item.parsed.y)} (${percent(data.deciles.share[item.dataIndex])})`,
            },
          },
        },
        scales: {
          x: { title: { display: true, text: text.decile } },
          y: { beginAtZero: true, ticks: { callback: (value) => number(value) } },
        },
      },
    });
  }

  const paretoCanvas = document.getElementById("pareto-chart");
  if (paretoCanvas) {
    const points = data.pareto.x.map((x, i) => ({ x, y: data.pareto.y[i] }));
    paretoCanvas.chart = new window.Chart(paretoCanvas, {
      type: "line",
      data: {
        datasets: [
          { label: text.cumulative, data: points, borderColor: accent, backgroundColor: accent, pointRadius: 0, fill: false, tension: 0 },
          { label: text.equality, data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], borderColor: "#9aa3b2", borderDash: [4, 4], pointRadius: 0 },
          { label: text.top20, data: [{ x: data.pareto.top20[0], y: data.pareto.top20[1] }], borderColor: "#cf222e", backgroundColor: "#cf222e", pointRadius: 5, showLine: false },
        ],
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        parsing: false,
        plugins: {
          tooltip: { callbacks: { label: (item) => `${percent(item.parsed.x)} → ${percent(item.parsed.y)}` } },
        },
        scales: {
          x: { type: "linear", min: 0, max: 1, title: { display: true, text: text.customers }, ticks: { callback: (value) => percent(value) } },
          y: { min: 0, max: 1, title: { display: true, text: text.cumulative }, ticks: { callback: (value) => percent(value) } },
        },
      },
    });
  }
});
