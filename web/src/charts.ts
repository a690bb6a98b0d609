// Chart.js, registered with only what the dashboard draws (bars and
// lines), loaded on demand so the first page does not carry it.
import {
  BarController, BarElement, CategoryScale, Chart, Filler, Legend, LinearScale, LineController, LineElement,
  PointElement, ScatterController, Tooltip, type ChartConfiguration,
} from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LineController, LineElement, PointElement,
  ScatterController, Tooltip, Legend, Filler);
Chart.defaults.font.family = getComputedStyle(document.documentElement).getPropertyValue("--font").trim() ||
  "system-ui, sans-serif";
Chart.defaults.color = "#4b5565";
Chart.defaults.borderColor = "#e6e8ee";
Chart.defaults.animation = false;

export function create(canvas: HTMLCanvasElement, config: ChartConfiguration): Chart {
  return new Chart(canvas, config);
}
export type { ChartConfiguration };
