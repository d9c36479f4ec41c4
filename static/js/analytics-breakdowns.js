// Bar charts of the dashboard's revenue breakdowns (Chart.js, vendored, loaded by the page).
// The figures come from the "breakdown-chart-data" JSON block; each chart has a table with the
// same figures under it, so nothing depends on this file.
document.addEventListener("DOMContentLoaded", () => {
  const source = document.getElementById("breakdown-chart-data");
  if (!source || typeof window.Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const text = data.text;
  const lang = document.documentElement.lang || undefined;
  const percent = (value) => new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 }).format(value);
  const number = (value) => new Intl.NumberFormat(lang, { maximumFractionDigits: 0 }).format(value);
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#1f6feb";

  document.querySelectorAll("canvas[data-breakdown]").forEach((canvas) => {
    const figures = data[canvas.dataset.breakdown];
    if (!figures || !figures.labels.length) return;
    // Many bars (47 prefectures) read better horizontally, one per line.
    const horizontal = figures.labels.length > 8;
    if (horizontal) canvas.parentElement.style.height = `${Math.max(240, figures.labels.length * 18)}px`;
    const valueAxis = horizontal ? "x" : "y";
    canvas.chart = new window.Chart(canvas, {
      type: "bar",
      data: { labels: figures.labels, datasets: [{ label: text.revenue, data: figures.revenue, backgroundColor: accent }] },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        indexAxis: horizontal ? "y" : "x",
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: (item) => {
                const share = figures.share[item.dataIndex];
                const customers = figures.customers[item.dataIndex];
                const parts = [`${text.revenue}: ${number(item.parsed[valueAxis])}`];
                if (share !== null) parts[0] += ` (${percent(share)})`;
                parts.push(`${text.customers}: ${number(customers)}`);
                return parts;
              },
            },
          },
        },
        scales: { [valueAxis]: { beginAtZero: true, ticks: { callback: (value) => number(value) } } },
      },
    });
  });
});
